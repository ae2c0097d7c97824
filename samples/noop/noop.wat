;; noop: reads nothing, writes nothing, exits 0. The smallest valid function: for benchmarks.
(module
  (func (export "_start")))
