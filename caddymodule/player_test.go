package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"

	// Directives used by TestPlayerCaddyfileAdapt.
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

// provisionPlayer provisions p with a fresh Caddy context.
func provisionPlayer(t *testing.T, p *Player) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := p.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
}

// servePlayer runs one request through p and fails if next is called.
func servePlayer(t *testing.T, p *Player, req *http.Request) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("p2p_player called the next handler")
		return nil
	})
	return rec, p.ServeHTTP(rec, req, next)
}

// scriptContent returns the text between the opening tag and the next
// </script>.
func scriptContent(t *testing.T, page, openTag string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, openTag)
	if !ok {
		t.Fatalf("page has no %s", openTag)
	}
	body, _, ok := strings.Cut(rest, "</script>")
	if !ok {
		t.Fatalf("unterminated %s", openTag)
	}
	return body
}

// pageImports parses the import map of a rendered page.
func pageImports(t *testing.T, page string) map[string]string {
	t.Helper()
	var m struct {
		Imports map[string]string `json:"imports"`
	}
	if err := json.Unmarshal([]byte(scriptContent(t, page, `<script type="importmap">`)), &m); err != nil {
		t.Fatalf("import map is not JSON: %v", err)
	}
	return m.Imports
}

// pageDefaults parses the embedded page configuration of a rendered page.
func pageDefaults(t *testing.T, page string) playerDefaults {
	t.Helper()
	var d playerDefaults
	raw := scriptContent(t, page, `<script type="application/json" id="caddy-p2p-defaults">`)
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("page defaults are not JSON: %v\n%s", err, raw)
	}
	return d
}

func TestPlayerDefaultCDN(t *testing.T) {
	p := &Player{Manifest: "/media/demo/master.m3u8", Tracker: "wss://tracker.example/announce"}
	provisionPlayer(t, p)

	rec, err := servePlayer(t, p, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q", got)
	}
	page := rec.Body.String()
	if !strings.HasPrefix(page, "<!doctype html>") {
		t.Errorf("page does not start with a doctype: %.40q", page)
	}

	want := map[string]string{
		"hls.js":                 "https://cdn.jsdelivr.net/npm/hls.js@" + DefaultHLSVersion + "/dist/hls.mjs",
		"p2p-media-loader-core":  "https://cdn.jsdelivr.net/npm/p2p-media-loader-core@2.3.1/dist/p2p-media-loader-core.es.min.js",
		"p2p-media-loader-hlsjs": "https://cdn.jsdelivr.net/npm/p2p-media-loader-hlsjs@2.3.1/dist/p2p-media-loader-hlsjs.es.min.js",
	}
	imports := pageImports(t, page)
	if len(imports) != len(want) {
		t.Errorf("imports %v, want %v", imports, want)
	}
	for k, v := range want {
		if imports[k] != v {
			t.Errorf("imports[%q] = %q, want %q", k, imports[k], v)
		}
	}

	d := pageDefaults(t, page)
	if d.Manifest != "/media/demo/master.m3u8" || d.Tracker != "wss://tracker.example/announce" || d.Packages != DefaultPlayerPackages {
		t.Errorf("defaults %+v", d)
	}
	if d.Versions["p2p-media-loader-core"] != "2.3.1" {
		t.Errorf("versions %v", d.Versions)
	}
	if !strings.Contains(page, "window.caddyP2P = state") {
		t.Error("page does not publish window.caddyP2P")
	}
}

func TestPlayerLocalPackages(t *testing.T) {
	p := &Player{Packages: "/npm", HLSVersion: "1.5.20"}
	provisionPlayer(t, p)
	rec, err := servePlayer(t, p, httptest.NewRequest(http.MethodGet, "/player", nil))
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	imports := pageImports(t, rec.Body.String())
	want := map[string]string{
		"hls.js":                 "/npm/hls.js/dist/hls.mjs",
		"p2p-media-loader-core":  "/npm/p2p-media-loader-core/dist/p2p-media-loader-core.es.min.js",
		"p2p-media-loader-hlsjs": "/npm/p2p-media-loader-hlsjs/dist/p2p-media-loader-hlsjs.es.min.js",
	}
	for k, v := range want {
		if imports[k] != v {
			t.Errorf("imports[%q] = %q, want %q", k, imports[k], v)
		}
	}
	d := pageDefaults(t, rec.Body.String())
	if d.Manifest != "" || d.Tracker != "" || d.Packages != "/npm/" {
		t.Errorf("defaults %+v", d)
	}
}

func TestPlayerPackagesLayout(t *testing.T) {
	// An absolute URL hosting a node_modules tree.
	p := &Player{Packages: "http://10.201.0.1:8080/npm/", PackagesLayout: PackagesLayoutNodeModules}
	provisionPlayer(t, p)
	rec, _ := servePlayer(t, p, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := pageImports(t, rec.Body.String())["hls.js"]; got != "http://10.201.0.1:8080/npm/hls.js/dist/hls.mjs" {
		t.Errorf("hls.js = %q", got)
	}
	// A path hosting a CDN-style tree.
	p = &Player{Packages: "/cdn/", PackagesLayout: PackagesLayoutCDN}
	provisionPlayer(t, p)
	rec, _ = servePlayer(t, p, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := pageImports(t, rec.Body.String())["p2p-media-loader-hlsjs"]; got != "/cdn/p2p-media-loader-hlsjs@2.3.1/dist/p2p-media-loader-hlsjs.es.min.js" {
		t.Errorf("p2p-media-loader-hlsjs = %q", got)
	}
}

func TestPlayerEscaping(t *testing.T) {
	evil := `/m.m3u8?a=1&b="x"</script><script>alert(1)</script><!--`
	p := &Player{Manifest: evil, Tracker: "wss://t.example/announce?k='v'"}
	provisionPlayer(t, p)
	rec, err := servePlayer(t, p, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	page := rec.Body.String()
	if strings.Contains(page, "<script>alert(1)") {
		t.Fatal("manifest URL was not escaped")
	}
	d := pageDefaults(t, page)
	if d.Manifest != evil || d.Tracker != "wss://t.example/announce?k='v'" {
		t.Errorf("defaults did not round-trip: %+v", d)
	}
}

func TestPlayerPlaceholders(t *testing.T) {
	p := &Player{Tracker: "wss://{http.request.host}/announce", Manifest: "/media/{http.request.uri.query.v}/master.m3u8"}
	provisionPlayer(t, p)
	req := httptest.NewRequest(http.MethodGet, "/?v=demo", nil)
	repl := caddy.NewReplacer()
	repl.Set("http.request.host", "video.example")
	repl.Set("http.request.uri.query.v", "demo")
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	rec, err := servePlayer(t, p, req)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	d := pageDefaults(t, rec.Body.String())
	if d.Tracker != "wss://video.example/announce" || d.Manifest != "/media/demo/master.m3u8" {
		t.Errorf("defaults %+v", d)
	}
}

func TestPlayerMethods(t *testing.T) {
	p := &Player{}
	provisionPlayer(t, p)

	rec, err := servePlayer(t, p, httptest.NewRequest(http.MethodHead, "/", nil))
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: status %d, body %d bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}

	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		rec, err = servePlayer(t, p, httptest.NewRequest(m, "/", strings.NewReader("x")))
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: error %v, want a 405 handler error", m, err)
		}
		if got := rec.Header().Get("Allow"); got != "GET, HEAD, POST" {
			t.Errorf("%s: Allow %q", m, got)
		}
	}
}

// TestPlayerReports: POST takes a page's totals (204) and rejects junk
// (400); without a p2p app the report is dropped.
func TestPlayerReports(t *testing.T) {
	p := &Player{}
	provisionPlayer(t, p)
	rec, err := servePlayer(t, p, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"session":"s1","manifest":"http://x/m.m3u8","http_bytes":10,"p2p_bytes":20}`)))
	if err != nil || rec.Code != http.StatusNoContent {
		t.Fatalf("report: %d, %v", rec.Code, err)
	}
	for _, body := range []string{`{`, `{"manifest":"x"}`, `{"session":"` + strings.Repeat("x", 65) + `"}`, strings.Repeat(" ", 5000) + `{}`} {
		_, err := servePlayer(t, p, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
			t.Errorf("%.20q: error %v, want 400", body, err)
		}
	}
}

func TestPlayerProvisionErrors(t *testing.T) {
	for name, p := range map[string]*Player{
		"javascript scheme":     {Packages: "javascript:alert(1)//"},
		"quote":                 {Packages: `/npm/"onload=x`},
		"query":                 {Packages: "https://cdn.example/npm/?x=1"},
		"fragment":              {Packages: "/npm/#x"},
		"credentials":           {Packages: "https://u:p@cdn.example/npm/"},
		"bare relative path":    {Packages: "npm/"},
		"scheme-relative":       {Packages: "//cdn.example/npm/"},
		"no host":               {Packages: "https:///npm/"},
		"space":                 {Packages: "/n pm/"},
		"bad layout":            {PackagesLayout: "flat"},
		"bad hls version":       {HLSVersion: "latest"},
		"bad tracker scheme":    {Tracker: "udp://tracker.example:80"},
		"bad manifest scheme":   {Manifest: "file:///etc/passwd"},
		"manifest without host": {Manifest: "https:///x.m3u8"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := p.Provision(ctx); err == nil {
			t.Errorf("%s: provision succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		cancel()
	}
}

func TestPlayerUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`p2p_player {
		manifest /media/demo/master.m3u8
		tracker wss://example.com/announce
		packages /npm/ node_modules
		hls_version 1.6.19
	}`)
	var p Player
	if err := p.UnmarshalCaddyfile(d); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	want := Player{Manifest: "/media/demo/master.m3u8", Tracker: "wss://example.com/announce", Packages: "/npm/", PackagesLayout: "node_modules", HLSVersion: "1.6.19"}
	if p.Manifest != want.Manifest || p.Tracker != want.Tracker || p.Packages != want.Packages ||
		p.PackagesLayout != want.PackagesLayout || p.HLSVersion != want.HLSVersion {
		t.Errorf("got %+v, want %+v", p, want)
	}

	for name, input := range map[string]string{
		"unknown option": "p2p_player {\n bogus 1\n}",
		"inline arg":     "p2p_player /x.m3u8",
		"missing value":  "p2p_player {\n manifest\n}",
		"extra value":    "p2p_player {\n tracker a b\n}",
		"bad layout":     "p2p_player {\n packages /npm/ flat\n}",
	} {
		var p Player
		err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "unknown option" && !strings.Contains(err.Error(), `unrecognized p2p_player option "bogus"`) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestPlayerCaddyfileAdapt(t *testing.T) {
	input := `:8099 {
		handle_path /npm/* {
			root * /srv/node_modules
			file_server
		}
		p2p_player / {
			manifest /media/demo/master.m3u8
			packages /npm/
		}
		file_server
	}`
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	if len(warnings) > 0 {
		t.Logf("warnings: %v", warnings)
	}
	cfg := string(out)
	i := strings.Index(cfg, `"handler":"p2p_player"`)
	j := strings.LastIndex(cfg, `"handler":"file_server"`)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("p2p_player is not ordered before file_server:\n%s", cfg)
	}
	if !strings.Contains(cfg, `"manifest":"/media/demo/master.m3u8"`) || !strings.Contains(cfg, `"packages":"/npm/"`) {
		t.Errorf("options missing from JSON:\n%s", cfg)
	}
}

// Reported totals are capped, so that sums of many hostile reports cannot
// wrap around.
func TestPlayerReportsClamped(t *testing.T) {
	s := newHandlerTestSeeder(t)
	if _, err := s.AddStream(seeder.StreamConfig{URL: liveMaster}); err != nil {
		t.Fatal(err)
	}
	p := &Player{}
	provisionPlayer(t, p)
	p.app = &App{seeder: s, offload: newOffload()}
	body := `{"session":"s1","manifest":"` + liveMaster + `","http_bytes":18446744073709551615,"p2p_bytes":9223372036854775808,"p2p_from_seeder_bytes":5}`
	if rec, err := servePlayer(t, p, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))); err != nil || rec.Code != http.StatusNoContent {
		t.Fatalf("report: %v", err)
	}
	p.app.offload.mu.Lock()
	r := p.app.offload.reports["s1"]
	p.app.offload.mu.Unlock()
	if r == nil || r.http != maxReportedBytes || r.p2p != maxReportedBytes || r.p2pFromSeed != 5 {
		t.Fatalf("report kept as %+v, want totals capped at %d", r, uint64(maxReportedBytes))
	}
}
