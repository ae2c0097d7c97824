;; table_memory: a table of 9,000,000 elements (~69 MiB), within the table size limit but above
;; the default memory_mb of 64.
(module
  (table $t 9000000 funcref)
  (func (export "_start")))
