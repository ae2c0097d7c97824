;; tables_1gib: twelve tables of 2^27 elements (1 GiB each at 8 bytes an element).
;; Expected: refused at registration.
(module
  (table $t0 134217728 funcref)
  (table $t1 134217728 funcref)
  (table $t2 134217728 funcref)
  (table $t3 134217728 funcref)
  (table $t4 134217728 funcref)
  (table $t5 134217728 funcref)
  (table $t6 134217728 funcref)
  (table $t7 134217728 funcref)
  (table $t8 134217728 funcref)
  (table $t9 134217728 funcref)
  (table $t10 134217728 funcref)
  (table $t11 134217728 funcref)
  (func (export "_start")))
