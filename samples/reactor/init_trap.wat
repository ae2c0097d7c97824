;; init_trap (hostile reactor): _initialize traps.
(module
  (memory 1)
  (func (export "_initialize") unreachable)
  (func (export "run")))
