;; memory_bomb: grows memory a page at a time until refused, then exits 0 as if all was well.
;; Expected: out_of_memory (a refused growth decides the kind, whatever the guest does next).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (call $proc_exit (i32.const 0))))
