package store_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/store"
)

// TestOpenForms: every URL form makes the client of its topology, with the password and
// TLS options applied, and a bad one is an error that never shows the password.
func TestOpenForms(t *testing.T) {
	tlsOpt := store.OpenOptions{TLS: &tls.Config{MinVersion: tls.VersionTLS12}}
	pwOpt := store.OpenOptions{Password: "from-file"}
	for _, tc := range []struct {
		name, url string
		o         store.OpenOptions
		kind      string // node, sentinel, cluster; "" = error
		password  string // what the data nodes get
		tls       bool
	}{
		{"sentinel", "redis+sentinel://u:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/2", store.OpenOptions{}, "sentinel", "s3cret", false},
		{"sentinel no db", "redis+sentinel://127.0.0.1:26379/mymaster", pwOpt, "sentinel", "from-file", false},
		{"sentinel tls", "rediss+sentinel://h1:26379,h2:26379/m/0?dial_timeout=3s", tlsOpt, "sentinel", "", true},
		{"sentinel tls options need rediss", "redis+sentinel://h1:26379/m/0", tlsOpt, "", "", false},
		{"sentinel without master", "redis+sentinel://u:s3cret@h1:26379", store.OpenOptions{}, "", "", false},
		{"sentinel bad db", "redis+sentinel://u:s3cret@h1:26379/m/x", store.OpenOptions{}, "", "", false},
		{"sentinel bad option", "redis+sentinel://u:s3cret@h1:26379/m/0?nope=1", store.OpenOptions{}, "", "", false},
		{"cluster", "redis+cluster://u:s3cret@10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000", store.OpenOptions{}, "cluster", "s3cret", false},
		{"cluster password file", "redis+cluster://10.0.0.1:7000", pwOpt, "cluster", "from-file", false},
		{"cluster tls", "rediss+cluster://u:s3cret@10.0.0.1:7000,10.0.0.2:7000?pool_size=4", tlsOpt, "cluster", "s3cret", true},
		{"cluster tls options need rediss", "redis+cluster://10.0.0.1:7000", tlsOpt, "", "", false},
		{"cluster has db 0 only", "redis+cluster://u:s3cret@10.0.0.1:7000/3", store.OpenOptions{}, "", "", false},
		{"cluster bad host", "redis+cluster://u:s3cret@10.0.0.1:7000,nohost", store.OpenOptions{}, "", "", false},
		{"node", "redis://u:s3cret@127.0.0.1:6379/1", store.OpenOptions{}, "node", "s3cret", false},
		{"node tls", "rediss://127.0.0.1:6380/0", tlsOpt, "node", "", true},
		{"bare list", "10.0.0.1:7000,10.0.0.2:7000", pwOpt, "cluster", "from-file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := store.OpenWith(tc.url, tc.o)
			if tc.kind == "" {
				if err == nil {
					c.Close()
					t.Fatalf("OpenWith(%q) succeeded; want an error", tc.url)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenWith(%q): %v", tc.url, err)
			}
			defer c.Close()
			var pw string
			var tc2 *tls.Config
			switch x := c.(type) {
			case *redis.ClusterClient:
				if tc.kind != "cluster" {
					t.Fatalf("got a cluster client; want %s", tc.kind)
				}
				pw, tc2 = x.Options().Password, x.Options().TLSConfig
			case *redis.Client:
				o := x.Options()
				// A Sentinel client is a *redis.Client whose address is the master's name.
				isSentinel := strings.Contains(x.String(), "FailoverClient") || o.Addr == "FailoverClient"
				if got := map[bool]string{true: "sentinel", false: "node"}[isSentinel]; got != tc.kind {
					t.Fatalf("got a %s client (%s); want %s", got, x.String(), tc.kind)
				}
				pw, tc2 = o.Password, o.TLSConfig
			default:
				t.Fatalf("client %T", c)
			}
			if pw != tc.password {
				t.Fatalf("password %q; want %q", pw, tc.password)
			}
			if (tc2 != nil) != tc.tls {
				t.Fatalf("TLS %v; want %v", tc2 != nil, tc.tls)
			}
			if tc.tls && tc.o.TLS != nil && tc2.MinVersion != tls.VersionTLS12 {
				t.Fatal("the --redis-ca/--redis-cert TLS options were not applied")
			}
		})
	}
}

// TestClusterNodeRefused: a single-node URL on a cluster node is refused with ErrClusterNode
// (it would answer MOVED to most keys); redis+cluster:// on the same node works.
func TestClusterNodeRefused(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := ctxT(t)
	admin := srv.Client(t)
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "cluster_state:ok", func() bool {
		return strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok")
	})
	for _, u := range []string{srv.URL, srv.Addr} {
		c, err := store.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		err = store.New(c, store.Config{}).CheckTopology(ctx)
		c.Close()
		if !errors.Is(err, store.ErrClusterNode) || !strings.Contains(err.Error(), "redis+cluster://") {
			t.Fatalf("CheckTopology(%s) = %v; want ErrClusterNode naming redis+cluster://", u, err)
		}
	}
	c, err := store.Open("redis+cluster://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One shard: coreFlow checks FIFO order, which holds within a shard only.
	s := store.New(c, store.Config{Prefix: "other:", Shards: 1})
	if err := s.CheckTopology(ctx); err != nil {
		t.Fatalf("CheckTopology(redis+cluster://) = %v", err)
	}
	if p := s.Config().Prefix; p != "{other}:" {
		t.Fatalf("cluster prefix = %q; want {other}:", p)
	}
	coreFlow(t, s)

	plain := redistest.Start(t)
	if err := store.New(plain.Client(t), store.Config{}).CheckTopology(ctx); err != nil {
		t.Fatalf("CheckTopology(plain server) = %v", err)
	}
}

func TestKeyPrefix(t *testing.T) {
	for name, want := range map[string]string{
		"faas": "faas:", "staging-2": "staging-2:", "a.b_c": "a.b_c:",
		"": "", "a:b": "", "{x}": "", "a b": "", strings.Repeat("x", 65): "",
	} {
		got, err := store.KeyPrefix(name)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("KeyPrefix(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestClusterNodeRefusedByMOVED: a user whose ACL denies INFO (the documented one) still
// learns at start that it reached a cluster node: reading the store's key answers MOVED.
func TestClusterNodeRefusedByMOVED(t *testing.T) {
	ctx := ctxT(t)
	args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}
	a, b := redistest.Start(t, args...), redistest.Start(t, args...)
	ac, bc := a.Client(t), b.Client(t)
	slot, err := ac.ClusterKeySlot(ctx, "faas:queue").Result()
	if err != nil {
		t.Fatal(err)
	}
	// b serves the store's slot and a every other: a answers MOVED for faas:queue.
	if err := bc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", slot, slot).Err(); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, slot - 1}, {slot + 1, 16383}} {
		if r[0] <= r[1] {
			if err := ac.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", r[0], r[1]).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	host, port, _ := strings.Cut(b.Addr, ":")
	if err := ac.ClusterMeet(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "cluster_state:ok", func() bool {
		return strings.Contains(ac.ClusterInfo(ctx).Val(), "cluster_state:ok") &&
			strings.Contains(bc.ClusterInfo(ctx).Val(), "cluster_state:ok")
	})
	acl := []any{"ACL", "SETUSER", "faas", "on", ">pw"}
	for _, r := range strings.Fields("resetkeys ~faas:* resetchannels &faas:* -@all +@read +@write +@scripting +@pubsub +@connection +time -@dangerous") {
		acl = append(acl, r)
	}
	if err := ac.Do(ctx, acl...).Err(); err != nil {
		t.Fatal(err)
	}
	c, err := store.Open("redis://faas:pw@" + a.Addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Info(ctx, "cluster").Err(); err == nil {
		t.Fatal("the ACL allows INFO: the test would not reach the MOVED probe")
	}
	if err := store.New(c, store.Config{}).CheckTopology(ctx); !errors.Is(err, store.ErrClusterNode) {
		t.Fatalf("CheckTopology = %v; want ErrClusterNode from MOVED", err)
	}
}

// TestRedactURL: no form of a Redis URL shows its password, in the user information or in a
// query option, parsed by net/url or not.
func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"redis://u:s3cret@h:6379/0", "redis://u:xxxxx@h:6379/0"},
		{"redis://:s3cret@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"redis://u@h:6379/0", "redis://u@h:6379/0"},
		{"redis+sentinel://u:s3cret@h1:26379,h2:26379/m/0", "redis+sentinel://u:xxxxx@h1:26379,h2:26379/m/0"},
		{"redis+sentinel://h1:26379/m/0?password=s3cret&dial_timeout=3s", "redis+sentinel://h1:26379/m/0?password=xxxxx&dial_timeout=3s"},
		{"redis+sentinel://h1:26379,h2:1/m?sentinel_password=s3cret", "redis+sentinel://h1:26379,h2:1/m?sentinel_password=xxxxx"},
		{"redis://h:6379/0?pool_size=4&Password=s3cret#frag", "redis://h:6379/0?pool_size=4&Password=xxxxx#frag"},
		{"redis://u:s3cret@bad host:1/0?password=s3cret", "redis://u:xxxxx@bad host:1/0?password=xxxxx"},
		{"h1:7000,h2:7000", "h1:7000,h2:7000"},
	} {
		got := store.RedactURL(c.in)
		if got != c.want || strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSentinelPassword: Sentinels that ask for a password (requirepass) are reached with
// the URL's sentinel_password option or OpenOptions.SentinelPassword (--redis-sentinel-
// password-file); without it the client cannot find the primary, and no error shows it.
func TestSentinelPassword(t *testing.T) {
	const pw = "s3ntinel-pw"
	primary := redistest.Start(t)
	sentinels := redistest.StartSentinelsWith(t, "m", primary, 1, pw)
	url := "redis+sentinel://" + sentinels[0].Addr + "/m/0"
	ctx := ctxT(t)
	for _, c := range []struct {
		name, url string
		o         store.OpenOptions
		ok        bool
	}{
		{"no password", url, store.OpenOptions{}, false},
		{"wrong password", url + "?sentinel_password=nope", store.OpenOptions{}, false},
		{"in the URL", url + "?sentinel_password=" + pw + "&dial_timeout=2s", store.OpenOptions{}, true},
		{"from a file", url, store.OpenOptions{SentinelPassword: pw}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rdb, err := store.OpenWith(c.url, c.o)
			if err != nil {
				t.Fatalf("OpenWith: %v", err)
			}
			defer rdb.Close()
			err = rdb.Set(ctx, "sentinel-password-test", c.name, 0).Err()
			if c.ok != (err == nil) {
				t.Fatalf("write through the Sentinels: %v; want success %v", err, c.ok)
			}
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Fatalf("the error shows the password: %v", err)
			}
			if c.ok {
				if v, err := primary.Client(t).Get(ctx, "sentinel-password-test").Result(); err != nil || v != c.name {
					t.Fatalf("on the primary: %q %v", v, err)
				}
			}
		})
	}
	if _, err := store.OpenWith(primary.URL, store.OpenOptions{SentinelPassword: pw}); err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("a Sentinel password with a one-node URL: %v; want an error without the password", err)
	}
}
