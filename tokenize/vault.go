package tokenize

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"go.uber.org/zap"
)

// Options are the run-time dependencies of a Vault.
type Options struct {
	// Logger gets login and renewal events (never card data, never a Vault
	// token). Nil: no logging.
	Logger *zap.Logger
	// Now is the clock for token creation times; nil means time.Now.
	Now func() time.Time
	// Observe, if set, is called after each try of each Vault call with
	// the call's name ("transit hmac", "kv read token", ...), how long the
	// try took and its error (nil on success; one of this package's, whose
	// text holds no card data and no request path): for latency metrics
	// and per-step benchmarks. It runs on the caller's goroutine, so it
	// must be quick.
	Observe func(op string, took time.Duration, err error)
}

// Vault is the gateway's connection to Vault. It is safe for concurrent
// use. Close it to stop token renewal.
type Vault struct {
	cfg    Config
	client *api.Client
	retry  retryPolicy
	log    *zap.Logger
	now    func() time.Time

	// layout is what the store's layout marker said (layoutIndex, ...);
	// see indexMayExist.
	layout atomic.Int32

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// New connects to Vault, logs in (token or AppRole, see Config.Auth) and
// keeps the login alive in the background: it renews the Vault token with
// a LifetimeWatcher and logs in again when renewal ends (max TTL reached,
// token revoked). It fails when the config is invalid (including
// VAULT_SKIP_VERIFY set) or the first login fails.
func New(ctx context.Context, cfg Config, opts Options) (*Vault, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	v := &Vault{
		cfg:    cfg,
		client: client,
		retry:  retryPolicy{timeout: cfg.Timeout, retries: cfg.Retries, backoff: cfg.Backoff, observe: opts.Observe},
		log:    opts.Logger,
		now:    opts.Now,
	}
	if v.log == nil {
		v.log = zap.NewNop()
	}
	if len(cfg.Addresses) > 0 {
		v.retry.unavailable = newFollower(cfg.Addresses, client, client.CloneConfig().HttpClient, v.log).unavailable
	}
	if v.now == nil {
		v.now = time.Now
	}
	login, err := v.login(ctx)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		v.keepAlive(bg, login)
	}()
	return v, nil
}

// Close stops token renewal. Calls made after Close fail with ErrClosed.
func (v *Vault) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	v.cancel()
	v.wg.Wait()
	v.client.ClearToken()
	return nil
}

// Client is the underlying Vault client, logged in as the gateway, e.g.
// for NewTransitSigner.
func (v *Vault) Client() *api.Client { return v.client }

// maxIdleConns bounds the idle connections to Vault kept for reuse: as
// many as there were calls at once, up to this.
const maxIdleConns = 64

// newClient builds an api.Client from cfg alone: api.DefaultConfig reads
// VAULT_* variables, so the TLS settings and the retry behaviour it picked
// from the environment are reset here.
func newClient(cfg Config) (*api.Client, error) {
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("tokenize: vault client from environment: %w", ac.Error)
	}
	ac.Address = cfg.Address
	ac.Timeout = cfg.Timeout
	ac.MaxRetries = 0 // retries are ours: bounded, and counted in ErrUnavailable
	ac.Limiter = nil
	tr, ok := ac.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("tokenize: unexpected vault transport %T", ac.HttpClient.Transport)
	}
	// Drop whatever VAULT_CACERT, VAULT_SKIP_VERIFY, ... set: the config
	// is the one source of trust.
	tr.TLSClientConfig.InsecureSkipVerify = false
	tr.TLSClientConfig.RootCAs = nil
	tr.TLSClientConfig.MinVersion = tls.VersionTLS12
	if cfg.CAFile != "" {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: cfg.CAFile}); err != nil {
			return nil, fmt.Errorf("tokenize: vault.ca_file: %w", err)
		}
	}
	// The default keeps GOMAXPROCS+1 idle connections: with more
	// payments than that at once, each burst closes connections the next
	// one opens again, and a new connection costs Vault and the gateway
	// more than the request it carries.
	tr.MaxIdleConnsPerHost = maxIdleConns
	tr.MaxIdleConns = maxIdleConns
	wipeWrites(tr)
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("tokenize: vault client: %w", err)
	}
	client.ClearToken() // NewClient takes VAULT_TOKEN; login decides
	// Nothing is wrapped: the default wraps every answer by
	// VAULT_WRAP_TTL, and the gateway would get a wrapping token instead.
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	return client, nil
}

// login authenticates and returns the login as a Secret for the
// LifetimeWatcher (nil Auth.Renewable: nothing to renew).
func (v *Vault) login(ctx context.Context) (*api.Secret, error) {
	switch v.cfg.Auth.Method {
	case "approle":
		return v.loginAppRole(ctx)
	default:
		return v.loginToken(ctx)
	}
}

func (v *Vault) loginToken(ctx context.Context) (*api.Secret, error) {
	token := os.Getenv("VAULT_TOKEN")
	if f := v.cfg.Auth.TokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tokenize: vault.auth.token_file: %w", err)
		}
		token = string(bytes.TrimSpace(b))
	}
	if token == "" {
		return nil, fmt.Errorf("%w: vault.auth: method token needs token_file or VAULT_TOKEN", ErrDenied)
	}
	v.client.SetToken(token)
	var self *api.Secret
	err := v.retry.do(ctx, "token lookup-self", func(ctx context.Context) error {
		var err error
		self, err = v.client.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	renewable, _ := self.TokenIsRenewable()
	ttl, _ := self.TokenTTL()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Renewable:     renewable && ttl > 0,
		LeaseDuration: int(ttl / time.Second),
	}}, nil
}

func (v *Vault) loginAppRole(ctx context.Context) (*api.Secret, error) {
	auth, err := approle.NewAppRoleAuth(v.cfg.Auth.RoleID,
		&approle.SecretID{FromFile: v.cfg.Auth.SecretIDFile},
		approle.WithMountPath(v.cfg.Auth.Mount))
	if err != nil {
		return nil, fmt.Errorf("%w: approle: %v", ErrInvalidInput, err)
	}
	var s *api.Secret
	err = v.retry.do(ctx, "approle login", func(ctx context.Context) error {
		var err error
		s, err = v.client.Auth().Login(ctx, auth) // sets the client's token
		return err
	})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil {
		return nil, &vaultError{kind: ErrDenied, op: "approle login", msg: "no token in answer"}
	}
	return s, nil
}

// keepAlive renews the login while it can and logs in again when renewal
// ends, until ctx is canceled. A token that is not renewable (the dev root
// token) needs nothing.
func (v *Vault) keepAlive(ctx context.Context, login *api.Secret) {
	wait := v.cfg.Backoff + 100*time.Millisecond
	for ctx.Err() == nil {
		if login != nil && login.Auth != nil && login.Auth.Renewable {
			v.watch(ctx, login)
		} else if v.cfg.Auth.Method != "approle" {
			return
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		login, err = v.login(ctx)
		if err != nil {
			v.log.Warn("vault login failed; retrying", zap.String("method", v.cfg.Auth.Method), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 30*time.Second)
			continue
		}
		wait = v.cfg.Backoff + 100*time.Millisecond
		v.log.Info("vault login renewed", zap.String("method", v.cfg.Auth.Method))
		if login.Auth == nil || !login.Auth.Renewable {
			// A fresh login that cannot be renewed: wait most of its TTL
			// before the next one.
			d := time.Duration(login.Auth.LeaseDuration) * time.Second * 2 / 3
			if d <= 0 {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
	}
}

// watch runs a LifetimeWatcher on login until renewal ends or ctx is done.
func (v *Vault) watch(ctx context.Context, login *api.Secret) {
	w, err := v.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: login})
	if err != nil {
		v.log.Warn("vault token watcher", zap.Error(err))
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.DoneCh():
			if err != nil {
				v.log.Info("vault token renewal ended", zap.String("reason", classify("renew", err).Error()))
			}
			return
		case <-w.RenewCh():
		}
	}
}

// Health reports whether Vault is reachable, initialised, unsealed and
// accepts the gateway's token. The error is ErrUnavailable (503) or
// ErrDenied.
func (v *Vault) Health(ctx context.Context) error {
	if v.closed.Load() {
		return ErrClosed
	}
	return v.retry.do(ctx, "health", func(ctx context.Context) error {
		h, err := v.client.Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if !h.Initialized || h.Sealed {
			return &vaultError{kind: ErrUnavailable, op: "health", msg: "vault sealed or not initialised"}
		}
		_, err = v.client.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
}
