;; A reactor whose _initialize calls proc_exit(0): its state cannot be captured.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory 1)
  (func (export "_initialize") (call $proc_exit (i32.const 0)))
  (func (export "run")))
