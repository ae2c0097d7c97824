;; init_oom (hostile reactor): _initialize grows memory for ever.
(module
  (memory 1)
  (func (export "_initialize") (loop $l (drop (memory.grow (i32.const 16))) (br $l)))
  (func (export "run")))
