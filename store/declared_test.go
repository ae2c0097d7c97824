package store

import (
	"context"
	"strings"
	"testing"

	"faas/internal/redistest"

	"github.com/redis/go-redis/v9"
)

// Every key a script touches must be declared in its KEYS: Redis documents it as required
// (a cluster routes a script by its keys, proxies check them), and it is what keeps a
// script of one task shard from reaching into another's slot. CheckDeclaredKeys makes the
// rule executable: it swaps every script for a copy whose redis.call refuses a key that is
// not in KEYS, so that a test suite run under it fails on any script that builds a key
// name from a prefix or from a value it read.

// luaDeclaredCheck defines checked_call, which the checked copies call for redis.call.
// PUBLISH (a channel, not a key) and TIME take no key; LMOVE and RPOPLPUSH take two; every
// other command the scripts use takes its key first.
const luaDeclaredCheck = `
local declared_keys = {}
for _, k in ipairs(KEYS) do declared_keys[k] = true end
local function checked_call(cmd, ...)
  local c = string.upper(cmd)
  if c ~= 'TIME' and c ~= 'PUBLISH' then
    local args = {...}
    local nkeys = 1
    if c == 'LMOVE' or c == 'RPOPLPUSH' then nkeys = 2 end
    for i = 1, nkeys do
      if not declared_keys[args[i]] then
        error('UNDECLARED ' .. c .. ' on key ' .. tostring(args[i]) .. ', which is not in KEYS')
      end
    end
  end
  return redis.call(cmd, ...)
end
`

// CheckDeclaredKeys replaces every script of the package with its checked copy (the store
// tests run under it, see main_test.go; benchmarks do not). Not safe while scripts run.
func CheckDeclaredKeys() {
	for _, sc := range scripts {
		sc.rs = redis.NewScript(checkedSource(sc.src))
	}
}

func checkedSource(src string) string {
	return luaDeclaredCheck + strings.ReplaceAll(src, "redis.call(", "checked_call(")
}

// TestDeclaredCheckCatches: the checked copy of a script that builds a key from ARGV fails,
// and one that declares its keys runs (so that the suite run under the check means
// something).
func TestDeclaredCheckCatches(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	bad := redis.NewScript(checkedSource(`return redis.call('GET', ARGV[1] .. 'queue')`))
	if err := bad.Run(ctx, c, []string{"p:leases"}, "p:").Err(); err == nil || !strings.Contains(err.Error(), "UNDECLARED GET on key p:queue") {
		t.Fatalf("a key built from ARGV: %v; want UNDECLARED", err)
	}
	good := redis.NewScript(checkedSource(`redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
redis.call('PUBLISH', ARGV[1], 'x')
return redis.call('TIME')`))
	if err := good.Run(ctx, c, []string{"p:a", "p:b"}, "chan").Err(); err != nil {
		t.Fatalf("declared keys: %v", err)
	}
	if len(scripts) < 15 {
		t.Fatalf("%d scripts registered; newScript missed some", len(scripts))
	}
}
