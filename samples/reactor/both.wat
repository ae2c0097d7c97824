;; both: exports _start and run, so it is neither a command nor a reactor: refused.
(module
  (func (export "_start"))
  (func (export "run")))
