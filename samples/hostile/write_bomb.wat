;; write_bomb: one fd_write to stderr of 1,048,576 iovecs of 64 KiB each, spread over 55 MiB
;; of memory (so that copying them misses the caches): 64 GiB in one host call. Expected:
;; timeout, the deadline checked between writes. stderr keeps only a tail, so memory stays
;; bounded either way; without the check the call ran 2.4 s past a 100 ms deadline.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1024)
  (func (export "_start")
    (local $i i32)
    ;; data: 8 MiB .. 64 MiB, touched so that it is real memory
    (memory.fill (i32.const 0x800000) (i32.const 101) (i32.const 0x3800000))
    ;; iovecs: 0 .. 8 MiB, iovec i = {8 MiB + (i mod 880) * 64 KiB, 64 KiB}
    (loop $fill
      (i32.store (i32.shl (local.get $i) (i32.const 3))
        (i32.add (i32.const 0x800000)
          (i32.shl (i32.rem_u (local.get $i) (i32.const 880)) (i32.const 16))))
      (i32.store (i32.add (i32.const 4) (i32.shl (local.get $i) (i32.const 3))) (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 1048576))))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1048576) (i32.const 0x3FFFFF0)))))
