;; _start takes a parameter. Refused.
(module (func (export "_start") (param i32)))
