;; table_grow_max: one table.grow of 2^31-1 elements (16 GiB at wazero's 8 bytes each), then
;; exits 0 as if all was well. Unchecked, it kills the process. Expected: out_of_memory.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (table $t 0 funcref)
  (func (export "_start")
    (drop (table.grow $t (ref.null func) (i32.const 0x7fffffff)))
    (call $proc_exit (i32.const 0))))
