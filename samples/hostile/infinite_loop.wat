;; infinite_loop: _start spins forever. Expected: timeout.
(module
  (func (export "_start") (loop $l (br $l))))
