;; fill (reactor): run reports the size of its buffer (the i32 at address 0), then fills
;; 60,000 bytes of it and records that size. Every task must report 0.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "run")
    (i32.store8 (i32.const 16) (i32.add (i32.const 48) (i32.load (i32.const 0))))
    (if (i32.gt_u (i32.load (i32.const 0)) (i32.const 9)) (then (i32.store8 (i32.const 16) (i32.const 43))))
    (memory.fill (i32.const 1024) (i32.const 0xab) (i32.const 60000))
    (i32.store (i32.const 0) (i32.const 60000))
    (i32.store (i32.const 32) (i32.const 16))
    (i32.store (i32.const 36) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))))
