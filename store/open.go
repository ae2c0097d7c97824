package store

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client timeouts set by Open. Reads and writes fail within about two seconds of Redis
// going silent (a stopped or paused server), so that callers can answer 503 quickly
// instead of hanging; go-redis retries once on a network error (every script is
// idempotent, see lua.go).
const (
	dialTimeout  = 2 * time.Second
	readTimeout  = 2 * time.Second
	writeTimeout = 2 * time.Second
	poolTimeout  = 3 * time.Second
	maxRetries   = 1
	// dialRetries bounds the dial attempts of one command (go-redis tries 5 times by
	// default, ~0.8 s against a refused port): a server down should be a quick 503.
	dialRetries = 2
)

// OpenOptions are what a Redis URL cannot carry, or should not.
type OpenOptions struct {
	// TLS configures rediss:// (CA, client certificate); nil keeps go-redis's defaults.
	TLS *tls.Config
	// Password, when set, replaces the URL's (read from a file, it stays out of ps).
	Password string
	// SentinelPassword, when set, is what a Sentinel set asks for (its requirepass),
	// replacing the URL's sentinel_password option.
	SentinelPassword string
}

// Open parses a Redis URL and returns a client; it does not ping. The forms:
//
//	redis://[[USER]:PASSWORD@]HOST:PORT[/DB]     one node (rediss:// over TLS)
//	redis+sentinel://[[USER]:PASSWORD@]S1:P1,S2:P2/MASTER[/DB][?sentinel_password=P]
//	                                             a Sentinel set (rediss+sentinel:// over TLS);
//	                                             USER:PASSWORD are the primary's, the
//	                                             option the Sentinels' (sentinel_username too)
//	redis+cluster://[[USER]:PASSWORD@]H1:P1,H2:P2
//	                                             a Redis Cluster (rediss+cluster:// over TLS)
//	HOST:PORT                                    one node (as redis://HOST:PORT/0)
//	H1:P1,H2:P2                                  a Redis Cluster
//
// go-redis's query options (dial_timeout=3s, pool_size=...) work in every URL form.
// Errors show the URL with its password redacted.
func Open(url string) (redis.UniversalClient, error) { return OpenWith(url, OpenOptions{}) }

// OpenWith is Open with options. A TLS configuration needs a TLS scheme (rediss://,
// rediss+sentinel://, rediss+cluster://) or a bare cluster list, whose nodes are then all
// reached over TLS.
func OpenWith(url string, o OpenOptions) (redis.UniversalClient, error) {
	url = strings.TrimSpace(url)
	if url == "" {
		return nil, fmt.Errorf("store: empty Redis URL")
	}
	scheme, _, hasScheme := strings.Cut(url, "://")
	if o.SentinelPassword != "" && scheme != schemeSentinel && scheme != schemeSentinelTLS {
		return nil, fmt.Errorf("store: a Sentinel password needs a %s:// URL, not %q", schemeSentinel, RedactURL(url))
	}
	if hasScheme {
		switch scheme {
		case schemeSentinel, schemeSentinelTLS:
			return openSentinel(url, scheme, o)
		case schemeCluster, schemeClusterTLS:
			return openCluster(url, scheme, o)
		}
	} else {
		addrs := strings.Split(url, ",")
		for i, a := range addrs {
			addrs[i] = strings.TrimSpace(a)
			if addrs[i] == "" || !strings.Contains(addrs[i], ":") {
				return nil, fmt.Errorf("store: bad Redis address %q in %q: want host:port", RedactURL(a), RedactURL(url))
			}
		}
		if len(addrs) == 1 {
			url = "redis://" + addrs[0] + "/0"
		} else {
			return newCluster(&redis.ClusterOptions{Addrs: addrs, TLSConfig: o.TLS, Password: o.Password}), nil
		}
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		// go-redis's message may quote the URL: say what is wrong without it.
		return nil, fmt.Errorf("store: bad Redis URL %q: want redis://[[USER]:PASSWORD@]HOST:PORT/DB, rediss://, "+
			"redis+sentinel://HOST:PORT,.../MASTER/DB or redis+cluster://HOST:PORT,...", RedactURL(url))
	}
	if o.TLS != nil {
		if opt.TLSConfig == nil {
			return nil, fmt.Errorf("store: Redis URL %q: TLS options need a rediss:// URL", RedactURL(url))
		}
		opt.TLSConfig = mergeTLS(o, opt.TLSConfig.ServerName)
	}
	if o.Password != "" {
		opt.Password = o.Password
	}
	tuneTimeouts(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.DialerRetries)
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

// mergeTLS is o.TLS, with the server name the URL implies when o.TLS names none.
func mergeTLS(o OpenOptions, serverName string) *tls.Config {
	c := o.TLS.Clone()
	if c.ServerName == "" {
		c.ServerName = serverName
	}
	return c
}

// tuneTimeouts sets the client timeouts that the URL left unset (the option types of a
// node, a Sentinel set and a cluster share these fields but no type).
func tuneTimeouts(dial, read, write, pool *time.Duration, retries, dialerRetries *int) {
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{dial, dialTimeout}, {read, readTimeout}, {write, writeTimeout}, {pool, poolTimeout}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if *retries == 0 {
		*retries = maxRetries
	}
	if *dialerRetries == 0 {
		*dialerRetries = dialRetries
	}
}

// userinfo finds the password of a URL that net/url cannot parse; queryPassword the value
// of a query option whose name says password (go-redis reads ?password= in a Sentinel URL).
var (
	userinfo      = regexp.MustCompile(`(://[^/@]*?:)[^/@]*@`)
	queryPassword = regexp.MustCompile(`(?i)([?&][^=&#]*(?:password|passwd|pwd)[^=&#]*=)[^&#]*`)
)

// RedactURL returns s with the password of its user information and the values of its
// password query options replaced by "xxxxx", whether or not s parses as a URL: it is what
// every message showing a Redis URL prints.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			s = u.Redacted()
		}
	} else if err != nil {
		s = userinfo.ReplaceAllString(s, "${1}xxxxx@")
	}
	return queryPassword.ReplaceAllString(s, "${1}xxxxx")
}
