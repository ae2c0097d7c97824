;; deep_recursion: unbounded recursion with a few locals per frame. Expected: trap (stack overflow).
(module
  (func $down (param $n i64) (result i64)
    (local $a i64) (local $b i64)
    (local.set $a (i64.add (local.get $n) (i64.const 1)))
    (local.set $b (call $down (local.get $a)))
    (i64.add (local.get $a) (local.get $b)))
  (func (export "_start") (drop (call $down (i64.const 0)))))
