;; random_bomb: grows its memory to 1 GiB (needs memory_mb=1024), asks random_get for all of
;; it in one host call, and returns. Expected: timeout under a deadline shorter than filling
;; 1 GiB takes (the sandbox fills in bounded chunks, checking the deadline between them);
;; out_of_memory when the memory limit refuses the growth.
(module
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.lt_s (memory.grow (i32.const 16383)) (i32.const 0))
      (then unreachable))
    (drop (call $random_get (i32.const 0) (i32.const 0x40000000)))))
