;; spin: a tight counting loop, the cheapest loop iteration there is: the worst case for a
;; per-iteration check. It counts an i64 from 0 to 10,000,000 and writes nothing; it exits
;; with code 0 when the count ended where it should. For benchmarks (docs/BENCHMARKS.md).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i64)
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 10000000))))
    (if (i64.ne (local.get $i) (i64.const 10000000)) (then (call $exit (i32.const 1))))))
