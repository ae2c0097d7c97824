;; table_then_memory: grows its table by 1,500,000 elements (~11.4 MiB), then asks for 100
;; pages (6.25 MiB) of memory: under memory_mb=16 the memory growth must be refused, as the
;; table took its share.
(module
  (memory (export "memory") 1)
  (table $t 0 funcref)
  (func (export "_start")
    (drop (table.grow $t (ref.null func) (i32.const 1500000)))
    (drop (memory.grow (i32.const 100)))))
