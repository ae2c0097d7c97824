package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"faas/client"
)

// connFlags are the flags every client command shares: where the server is, the API key,
// and the CA that signed an https:// server's certificate.
type connFlags struct {
	e                   *env
	server, key, caFile string
}

// serverFlags adds --server, --api-key and --ca-file.
func (e *env) serverFlags(fs *pflag.FlagSet) *connFlags {
	c := &connFlags{e: e}
	fs.Var(serverValue{&c.server}, "server", "server URL, http(s)://HOST:PORT or HOST:PORT (default $FAAS_SERVER, else http://127.0.0.1:8000)")
	fs.StringVar(&c.key, "api-key", "", "API key of a server run with --api-keys (default $FAAS_API_KEY; prefer the variable: flags show in ps)")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM file of the CA that signed an https:// server's certificate (default: the system's)")
	return c
}

// url is the server's URL: the flag, else $FAAS_SERVER, else the default, normalized by
// serverURL. A bad --server is a usage error when the flag is parsed; a bad $FAAS_SERVER
// when the command starts (checkServerEnv).
func (c *connFlags) url() string {
	if c.server != "" {
		return c.server
	}
	if v, err := serverURL(c.e.getenv("FAAS_SERVER")); err == nil && v != "" {
		return v
	}
	return "http://127.0.0.1:8000"
}

// client returns a client of the server with the key and CA given.
func (c *connFlags) client() (*client.Client, error) {
	key := c.key
	if key == "" {
		key = c.e.getenv("FAAS_API_KEY")
	}
	opts := []client.Option{client.WithAPIKey(key)}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, usagef("--ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca-file %s: no PEM certificate in it", c.caFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
		tr.Proxy = nil
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: tr}))
	}
	return client.New(c.url(), opts...), nil
}

// checkServerEnv refuses a malformed $FAAS_SERVER before a command that would use it runs.
func (e *env) checkServerEnv(cmd *cobra.Command, _ []string) error {
	if cmd.Flags().Lookup("server") == nil || cmd.Flags().Changed("server") {
		return nil
	}
	if _, err := serverURL(e.getenv("FAAS_SERVER")); err != nil {
		return usagef("FAAS_SERVER: %v", err)
	}
	return nil
}

// serverURL normalizes a server address: HOST:PORT means http://HOST:PORT; anything but an
// http or https URL with a host and nothing after the path is an error saying which form to
// use. "" stays "".
func serverURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not a server address; use http://HOST:PORT, https://HOST:PORT or HOST:PORT", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// serverValue is the --server flag: its value is normalized and checked when it is set.
type serverValue struct{ s *string }

func (v serverValue) Set(s string) error {
	u, err := serverURL(s)
	if err != nil {
		return err
	}
	*v.s = u
	return nil
}
func (v serverValue) String() string { return *v.s }
func (v serverValue) Type() string   { return "string" }
