;; A reactor: exports a function, but no _start. Must be refused.
(module (func (export "run")))
