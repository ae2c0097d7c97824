;; init_table (hostile reactor): _initialize grows a table, which a snapshot cannot capture.
(module
  (table $t 1 funcref)
  (func (export "_initialize") (drop (table.grow $t (ref.null func) (i32.const 4))))
  (func (export "run")))
