package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The schemes of the Redis topologies Open understands beyond go-redis's own redis:// and
// rediss:// (a single node). go-redis spells a Sentinel set or a cluster as one address plus
// "addr" query parameters; operators write host lists, so these schemes take a comma list
// and are rewritten into go-redis's form, which go-redis's own parser then reads (so every
// query option it documents works here too).
const (
	schemeSentinel    = "redis+sentinel"
	schemeSentinelTLS = "rediss+sentinel"
	schemeCluster     = "redis+cluster"
	schemeClusterTLS  = "rediss+cluster"
)

// ErrClusterNode: a single-node URL points at a node of a Redis Cluster, where every
// command on a key of another node would fail with MOVED.
var ErrClusterNode = errors.New("this Redis is a cluster node")

// splitHosts cuts SCHEME://[USERINFO@]H1:P1,H2:P2[/PATH][?QUERY] into the URL of the first
// host and the other hosts. A password holding '/', '?' or '@' must be percent-encoded, as
// in any URL.
func splitHosts(raw, scheme string) (first *url.URL, more []string, err error) {
	rest := strings.TrimPrefix(raw, scheme+"://")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	user := ""
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		user, auth = auth[:at+1], auth[at+1:]
	}
	hosts := strings.Split(auth, ",")
	for i, h := range hosts {
		hosts[i] = strings.TrimSpace(h)
		if hh, p, err := net.SplitHostPort(hosts[i]); err != nil || hh == "" || p == "" {
			return nil, nil, fmt.Errorf("store: bad Redis address %q in %q: want host:port", hosts[i], RedactURL(raw))
		}
	}
	base := "redis"
	if strings.HasPrefix(scheme, "rediss") {
		base = "rediss"
	}
	u, err := url.Parse(base + "://" + user + hosts[0] + tail)
	if err != nil {
		return nil, nil, fmt.Errorf("store: bad Redis URL %q", RedactURL(raw))
	}
	return u, hosts[1:], nil
}

// withAddrs adds go-redis's addr query parameters for hosts to u.
func withAddrs(u *url.URL, hosts []string) string {
	q := u.Query()
	for _, h := range hosts {
		q.Add("addr", h)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// openSentinel opens redis+sentinel://[USER:PASS@]S1:P1,S2:P2/MASTER[/DB][?OPTIONS]: the
// hosts are Sentinels, MASTER the name they monitor. USER:PASS (or OpenOptions.Password)
// authenticate to the primary and replicas, not to the Sentinels.
func openSentinel(raw, scheme string, o OpenOptions) (redis.UniversalClient, error) {
	u, more, err := splitHosts(raw, scheme)
	if err != nil {
		return nil, err
	}
	want := fmt.Errorf("store: bad Redis URL %q: want %s://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]", RedactURL(raw), scheme)
	parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
	if len(parts) < 1 || len(parts) > 2 {
		return nil, want
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil // go-redis would send them to the Sentinels
	}
	q := u.Query()
	// The Sentinels' own credentials (their requirepass): options of ours, not go-redis's.
	sentinelUser, sentinelPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	if o.SentinelPassword != "" {
		sentinelPass = o.SentinelPassword
	}
	q.Set("master_name", parts[0])
	u.RawQuery = q.Encode()
	u.Path = "/"
	if len(parts) == 2 {
		u.Path = "/" + parts[1]
	}
	opt, err := redis.ParseFailoverURL(withAddrs(u, more))
	if err != nil {
		return nil, want
	}
	opt.Username, opt.Password = user, pass
	opt.SentinelUsername, opt.SentinelPassword = sentinelUser, sentinelPass
	if o.Password != "" {
		opt.Password = o.Password
	}
	if o.TLS != nil {
		if opt.TLSConfig == nil {
			return nil, fmt.Errorf("store: Redis URL %q: TLS options need %s://", RedactURL(raw), schemeSentinelTLS)
		}
		opt.TLSConfig = mergeTLS(o, opt.TLSConfig.ServerName)
	}
	tuneTimeouts(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.DialerRetries)
	opt.ContextTimeoutEnabled = true
	return redis.NewFailoverClient(opt), nil
}

// openCluster opens redis+cluster://[USER:PASS@]H1:P1,H2:P2[?OPTIONS] (rediss+cluster://
// over TLS): any reachable nodes of the cluster, which go-redis asks for the rest.
func openCluster(raw, scheme string, o OpenOptions) (redis.UniversalClient, error) {
	u, more, err := splitHosts(raw, scheme)
	if err != nil {
		return nil, err
	}
	if u.Path != "" && u.Path != "/" && u.Path != "/0" {
		return nil, fmt.Errorf("store: Redis URL %q: a cluster has database 0 only (use --prefix to share it)", RedactURL(raw))
	}
	u.Path = ""
	opt, err := redis.ParseClusterURL(withAddrs(u, more))
	if err != nil {
		return nil, fmt.Errorf("store: bad Redis URL %q: want %s://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]", RedactURL(raw), scheme)
	}
	if o.Password != "" {
		opt.Password = o.Password
	}
	if o.TLS != nil {
		if opt.TLSConfig == nil {
			return nil, fmt.Errorf("store: Redis URL %q: TLS options need %s://", RedactURL(raw), schemeClusterTLS)
		}
		opt.TLSConfig = mergeTLS(o, opt.TLSConfig.ServerName)
	}
	return newCluster(opt), nil
}

func newCluster(opt *redis.ClusterOptions) *redis.ClusterClient {
	tuneTimeouts(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.DialerRetries)
	opt.ContextTimeoutEnabled = true
	return redis.NewClusterClient(opt)
}

// CheckTopology tells a single-node client pointed at a Redis Cluster node (ErrClusterNode,
// naming the URL form to use) from a usable one: INFO says cluster_enabled:1, or, for a
// user whose ACL denies INFO, reading one of the store's keys answers MOVED. Cluster and
// Sentinel clients, and a Redis that does not answer, pass: the first is what a cluster
// needs, and an unreachable Redis is reported by Ping.
func (s *Store) CheckTopology(ctx context.Context) error {
	c, ok := s.rdb.(*redis.Client)
	if !ok {
		return nil
	}
	cluster := false
	if info, err := c.Info(ctx, "cluster").Result(); err == nil {
		cluster = strings.Contains(info, "cluster_enabled:1")
	} else {
		err := c.Exists(ctx, s.k.queue()).Err()
		cluster = err != nil && (strings.HasPrefix(err.Error(), "MOVED ") || strings.HasPrefix(err.Error(), "ASK "))
	}
	if cluster {
		return fmt.Errorf("%w: reach it with redis+cluster://HOST:PORT[,HOST:PORT...] (or rediss+cluster://), not a single-node URL", ErrClusterNode)
	}
	return nil
}
