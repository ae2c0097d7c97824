;; Exports a function, but neither _start (a command) nor run (a reactor). Must be refused.
(module (func (export "main")))
