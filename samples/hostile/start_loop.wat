;; start_loop: a start section that spins forever, so instantiation itself never ends.
;; Expected: timeout (the deadline covers instantiation).
(module
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "_start")))
