;; Starts with 1 page, may grow to 60000: accepted (growth is what the limit refuses).
;; _start grows by 32 pages (2 MiB) and exits with 0 if that worked, 1 if it was refused.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1 60000)
  (func (export "_start")
    (call $exit (i32.eq (memory.grow (i32.const 32)) (i32.const -1)))))
