;; A reactor with an active data segment (index 0) before a passive one (index 1) that run
;; copies with memory.init: the snapshot module must keep the passive segment's index (and
;; the data count section right). _initialize writes "A" at 100; run copies "hi" to 101 and
;; writes the three bytes: "Ahi".
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 100) "x")
  (data $p "hi")
  (func (export "_initialize") (i32.store8 (i32.const 100) (i32.const 65)))
  (func (export "run")
    (memory.init $p (i32.const 101) (i32.const 0) (i32.const 2))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
