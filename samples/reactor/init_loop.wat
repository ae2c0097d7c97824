;; init_loop (hostile reactor): _initialize never returns.
(module
  (memory 1)
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "run")))
