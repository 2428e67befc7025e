package caddymodule

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// loadTracker provisions a p2p_tracker handler from JSON in ctx.
func loadTracker(t *testing.T, ctx caddy.Context, js string) *TrackerHandler {
	t.Helper()
	m, err := ctx.LoadModuleByID("http.handlers.p2p_tracker", json.RawMessage(js))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*TrackerHandler)
}

// A -> B (two handlers of the name with other settings) -> C: when A's
// sockets cannot be handed to one handler, the in-process seeder (which
// follows the default policy) still leaves A's policy, for one of B's, and
// then for one of C's.
func TestDefaultPolicyLeavesUnloadedHandlers(t *testing.T) {
	ctxA, cancelA := caddy.NewContext(caddy.Context{Context: context.Background()})
	hA := loadTracker(t, ctxA, `{"name":"rv","interval":"10m","peer_timeout":"1h"}`)
	eng := hA.engine
	if eng.Policy() != hA.policy {
		t.Fatal("default is not A's")
	}
	ctxB, cancelB := caddy.NewContext(caddy.Context{Context: context.Background()})
	b1 := loadTracker(t, ctxB, `{"name":"rv","interval":"30s"}`)
	b2 := loadTracker(t, ctxB, `{"name":"rv","interval":"40s"}`)
	cancelA() // A unloaded
	ctxC, cancelC := caddy.NewContext(caddy.Context{Context: context.Background()})
	c1 := loadTracker(t, ctxC, `{"name":"rv","interval":"30s"}`)
	c2 := loadTracker(t, ctxC, `{"name":"rv","interval":"40s"}`)
	cancelB()
	defer cancelC()
	d := eng.Policy()
	t.Logf("default is A's: %v, b1/b2: %v/%v, c1/c2: %v/%v; default interval %v peer_timeout %v",
		d == hA.policy, d == b1.policy, d == b2.policy, d == c1.policy, d == c2.policy,
		eng.Config().AnnounceInterval, eng.Config().PeerTimeout)
	if d != c1.policy && d != c2.policy {
		t.Errorf("the in-process seeder follows the policy of an unloaded handler (interval %v), not one of the running config's", time.Duration(eng.Config().AnnounceInterval))
	}
}
