;; table_2gib: a table of 2^28 elements (2 GiB at 8 bytes each) under the default memory_mb.
;; Expected: refused at registration (table size limit, and memory_mb).
(module
  (table $t 268435456 funcref)
  (func (export "_start")))
