;; table_grow_loop: grows a table a million elements (8 MB) at a time until refused, then
;; exits 0 as if all was well. Expected: out_of_memory (a refused grow decides the kind).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "_start")
    (loop $grow
      (br_if $grow (i32.ne (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1))))
    (call $proc_exit (i32.const 0))))
