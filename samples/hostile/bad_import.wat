;; bad_import: imports env.system, which is not WASI preview1. Expected: refused at validation.
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "cat /etc/passwd\00")
  (func (export "_start") (drop (call $system (i32.const 0)))))
