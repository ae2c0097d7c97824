;; unreachable: executes the unreachable instruction. Expected: trap.
(module
  (func (export "_start") unreachable))
