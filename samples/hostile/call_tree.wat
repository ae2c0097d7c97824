;; call_tree: a function with no loop that calls itself twice, 60 deep: 2^60 calls.
;; wazero checks deadlines only at loop headers, so without the sandbox's function-entry
;; check this runs for centuries. Expected: timeout.
(module
  (func $tree (param $n i32)
    (if (local.get $n)
      (then
        (call $tree (i32.sub (local.get $n) (i32.const 1)))
        (call $tree (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "_start") (call $tree (i32.const 60))))
