;; table_budget: grows its table within the budget and checks each answer, then grows memory.
;; Under memory_mb=16: the table takes 1,000,001 elements (~7.6 MiB), so memory may grow to
;; about 8 MiB more. It exits 0 when every answer was right, traps otherwise.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "_start")
    (if (i32.ne (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const 1)) (then unreachable))
    (if (i32.ne (table.size $t) (i32.const 1000001)) (then unreachable))
    ;; 100 pages (6.25 MiB) fit in what is left
    (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))
    (call $proc_exit (i32.const 0))))
