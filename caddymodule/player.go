package caddymodule

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

func init() {
	caddy.RegisterModule(&Player{})
	httpcaddyfile.RegisterHandlerDirective("p2p_player", parsePlayerCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("p2p_player", httpcaddyfile.Before, "file_server")
}

// playerPage is the page template: a self-contained HTML page that plays an
// HLS stream with hls.js and P2P Media Loader, loaded through an import map.
//
//go:embed web/player.html
var playerPage string

const (
	// DefaultPlayerPackages is the packages base used when none is configured:
	// jsDelivr's npm mirror, which serves <name>@<version>/<file>.
	DefaultPlayerPackages = "https://cdn.jsdelivr.net/npm/"
	// DefaultHLSVersion is the hls.js version the page loads by default. It
	// matches testdata/browser/package.json.
	DefaultHLSVersion = "1.6.19"
	// P2PMLVersion is the version of p2p-media-loader-core and
	// p2p-media-loader-hlsjs the page loads from a CDN.
	P2PMLVersion = "2.3.1"

	// PackagesLayoutCDN lays out packages as <base><name>@<version>/<file>.
	PackagesLayoutCDN = "cdn"
	// PackagesLayoutNodeModules lays out packages as <base><name>/<file>,
	// as in a node_modules directory.
	PackagesLayoutNodeModules = "node_modules"
)

// playerModule is one ES module of the import map.
type playerModule struct {
	name, version, file string
}

// Player serves the P2P video player page: hls.js 1.x with P2P Media Loader
// (p2p-media-loader-core and p2p-media-loader-hlsjs 2.3.1). The page records
// P2P Media Loader's events into window.caddyP2P (see web/player.html).
//
// The page reads its manifest, tracker and packages from this configuration;
// the query parameters manifest, tracker, core (JSON merged into the P2P
// Media Loader core config), hls (JSON merged into the hls.js config),
// stun=0 and swarm override them in the browser.
//
// It answers GET and HEAD (405 otherwise) and never calls the next handler.
type Player struct {
	// Manifest is the default HLS playlist URL, absolute or relative to the
	// page. Request placeholders are replaced per request.
	Manifest string `json:"manifest,omitempty"`
	// Tracker is the default WebTorrent tracker URL (ws:// or wss://; http(s)
	// and relative URLs are mapped to ws(s) by the page). Request
	// placeholders are replaced per request. Default: ws(s)://<page host>/announce.
	Tracker string `json:"tracker,omitempty"`
	// SwarmID is P2P Media Loader's swarmId: the base of every swarm
	// name, so that viewers who reach the page under different host names
	// share swarms, and the p2p app's stream entry can name the same id.
	// Default: the manifest URL without its query.
	SwarmID string `json:"swarm_id,omitempty"`
	// Packages is the base URL of the npm packages: an absolute http(s) URL
	// or a path on this site. Default: https://cdn.jsdelivr.net/npm/.
	Packages string `json:"packages,omitempty"`
	// PackagesLayout is "cdn" (<base><name>@<version>/<file>) or
	// "node_modules" (<base><name>/<file>, no version). Default: "cdn" for an
	// absolute URL, "node_modules" for a path.
	PackagesLayout string `json:"packages_layout,omitempty"`
	// HLSVersion is the hls.js version for the cdn layout. Default: 1.6.19.
	HLSVersion string `json:"hls_version,omitempty"`

	tmpl      *template.Template
	importMap template.HTML
	app       *App // the p2p app, if configured: it takes the page's reports
}

// CaddyModule returns the Caddy module information.
func (*Player) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.p2p_player",
		New: func() caddy.Module { return new(Player) },
	}
}

var playerVersionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// Provision validates the configuration, builds the import map and parses
// the page template.
func (p *Player) Provision(ctx caddy.Context) error {
	if v, err := ctx.AppIfConfigured("p2p"); err == nil {
		p.app = v.(*App)
	}
	repl := caddy.NewReplacer()
	base, err := normalizePackagesBase(repl.ReplaceAll(p.Packages, ""))
	if err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	p.Packages = base

	if p.PackagesLayout == "" {
		p.PackagesLayout = PackagesLayoutNodeModules
		if strings.HasPrefix(base, "http://") || strings.HasPrefix(base, "https://") {
			p.PackagesLayout = PackagesLayoutCDN
		}
	}
	if p.PackagesLayout != PackagesLayoutCDN && p.PackagesLayout != PackagesLayoutNodeModules {
		return fmt.Errorf("packages_layout: must be %q or %q, got %q", PackagesLayoutCDN, PackagesLayoutNodeModules, p.PackagesLayout)
	}

	if p.HLSVersion == "" {
		p.HLSVersion = DefaultHLSVersion
	}
	if !playerVersionRe.MatchString(p.HLSVersion) {
		return fmt.Errorf("hls_version: invalid version %q", p.HLSVersion)
	}

	if err := checkPlayerURL(p.Manifest, "http", "https"); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := checkPlayerURL(p.Tracker, "ws", "wss", "http", "https"); err != nil {
		return fmt.Errorf("tracker: %w", err)
	}

	p.importMap, err = p.buildImportMap()
	if err != nil {
		return err
	}
	p.tmpl, err = template.New("player.html").Parse(playerPage)
	if err != nil {
		return fmt.Errorf("parsing player template: %w", err)
	}
	return nil
}

// modules lists the ES modules of the page. p2p-media-loader-hlsjs imports
// the bare specifier "p2p-media-loader-core", so the map needs all three.
func (p *Player) modules() []playerModule {
	return []playerModule{
		{"hls.js", p.HLSVersion, "dist/hls.mjs"},
		{"p2p-media-loader-core", P2PMLVersion, "dist/p2p-media-loader-core.es.min.js"},
		{"p2p-media-loader-hlsjs", P2PMLVersion, "dist/p2p-media-loader-hlsjs.es.min.js"},
	}
}

// moduleURL returns the URL of one module under the packages base.
func (p *Player) moduleURL(m playerModule) string {
	if p.PackagesLayout == PackagesLayoutCDN {
		return p.Packages + m.name + "@" + m.version + "/" + m.file
	}
	return p.Packages + m.name + "/" + m.file
}

// buildImportMap renders the complete <script type="importmap"> element.
// html/template treats the content of a script whose type is not a
// JavaScript MIME type as HTML text and would entity-escape the JSON
// (browsers do not decode entities there), so the element is built here.
// json.Marshal escapes '<', '>' and '&', so the JSON cannot end the script
// element early.
func (p *Player) buildImportMap() (template.HTML, error) {
	imports := make(map[string]string)
	for _, m := range p.modules() {
		imports[m.name] = p.moduleURL(m)
	}
	js, err := json.MarshalIndent(map[string]any{"imports": imports}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("building import map: %w", err)
	}
	return template.HTML(`<script type="importmap">` + "\n" + string(js) + "\n</script>"), nil
}

// playerDefaults is the page configuration embedded as JSON in the page.
type playerDefaults struct {
	Manifest string `json:"manifest"`
	Tracker  string `json:"tracker"`
	SwarmID  string `json:"swarmId,omitempty"`
	// SeederPrefix is the seeder's peer id prefix, for the page's report
	// of the bytes it got from the seeder.
	SeederPrefix string            `json:"seederPrefix"`
	Packages     string            `json:"packages"`
	Versions     map[string]string `json:"versions"`
}

// ServeHTTP renders the player page.
func (p *Player) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method == http.MethodPost {
		return p.takeReport(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}

	manifest, tracker := p.Manifest, p.Tracker
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		manifest = repl.ReplaceAll(manifest, "")
		tracker = repl.ReplaceAll(tracker, "")
	}
	versions := make(map[string]string)
	for _, m := range p.modules() {
		versions[m.name] = m.version
	}

	var buf bytes.Buffer
	err := p.tmpl.Execute(&buf, struct {
		ImportMap template.HTML
		Defaults  playerDefaults
	}{
		ImportMap: p.importMap,
		Defaults:  playerDefaults{Manifest: manifest, Tracker: tracker, SwarmID: p.SwarmID, SeederPrefix: seeder.DefaultPeerIDPrefix, Packages: p.Packages, Versions: versions},
	})
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("rendering player page: %w", err))
	}

	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// normalizePackagesBase checks that the packages base is a plain absolute
// http(s) URL or a path (no query, fragment, credentials, quotes or
// whitespace), and returns it with a trailing slash.
func normalizePackagesBase(base string) (string, error) {
	base = strings.TrimSpace(base)
	if base == "" {
		return DefaultPlayerPackages, nil
	}
	if i := strings.IndexFunc(base, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune("\"'`<>\\{}|^", r)
	}); i >= 0 {
		return "", fmt.Errorf("invalid character %q in %q", base[i], base)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(base, "#") || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%q must be a plain URL or path without query, fragment or credentials", base)
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		if u.Host == "" {
			return "", fmt.Errorf("%q has no host", base)
		}
	case u.Scheme != "":
		return "", fmt.Errorf("%q: scheme must be http or https", base)
	case strings.HasPrefix(base, "//"):
		return "", fmt.Errorf("%q: use an absolute http(s) URL instead of a scheme-relative one", base)
	case !strings.HasPrefix(base, "/") && !strings.HasPrefix(base, "./") && !strings.HasPrefix(base, "../"):
		return "", fmt.Errorf("%q must be an absolute http(s) URL or a path starting with /, ./ or ../", base)
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base, nil
}

// checkPlayerURL checks a configured manifest or tracker URL: empty, a
// relative reference, or an absolute URL with one of the given schemes.
// Values with placeholders are checked only after replacement, in the
// browser.
func checkPlayerURL(raw string, schemes ...string) error {
	if raw == "" || strings.Contains(raw, "{") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme == "" {
		return nil
	}
	for _, s := range schemes {
		if strings.EqualFold(u.Scheme, s) {
			if u.Host == "" {
				return fmt.Errorf("%q has no host", raw)
			}
			return nil
		}
	}
	return fmt.Errorf("%q: scheme must be one of %s", raw, strings.Join(schemes, ", "))
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	p2p_player [<matcher>] {
//	    manifest    <url>                      # default HLS playlist
//	    tracker     <ws-url>                   # default: ws(s)://<host>/announce
//	    packages    <base-url> [cdn|node_modules]  # default: jsDelivr (cdn layout)
//	    hls_version <version>                  # hls.js version, cdn layout only
//	}
//
// For example, to serve the page offline with the packages of a local
// node_modules directory:
//
//	handle_path /npm/* {
//	    root * testdata/browser/node_modules
//	    file_server
//	}
//	p2p_player / {
//	    manifest /media/demo/master.m3u8
//	    packages /npm/
//	}
func (p *Player) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "manifest":
			if !d.AllArgs(&p.Manifest) {
				return d.ArgErr()
			}
		case "tracker":
			if !d.AllArgs(&p.Tracker) {
				return d.ArgErr()
			}
		case "swarm_id":
			if !d.AllArgs(&p.SwarmID) {
				return d.ArgErr()
			}
		case "packages":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			p.Packages = args[0]
			if len(args) == 2 {
				if args[1] != PackagesLayoutCDN && args[1] != PackagesLayoutNodeModules {
					return d.Errf("packages: layout must be %q or %q, got %q", PackagesLayoutCDN, PackagesLayoutNodeModules, args[1])
				}
				p.PackagesLayout = args[1]
			}
		case "hls_version":
			if !d.AllArgs(&p.HLSVersion) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized p2p_player option %q", opt)
		}
	}
	return nil
}

func parsePlayerCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Player)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Player)(nil)
	_ caddyhttp.MiddlewareHandler = (*Player)(nil)
	_ caddyfile.Unmarshaler       = (*Player)(nil)
)

// maxReportedBytes caps each total in a player report (1 TiB, more than a
// page downloads).
const maxReportedBytes = 1 << 40

// playerReportBody is what the page POSTs every few seconds: its running
// totals for the stream it plays.
type playerReportBody struct {
	Session       string `json:"session"`
	Manifest      string `json:"manifest"`
	HTTPBytes     uint64 `json:"http_bytes"`
	P2PBytes      uint64 `json:"p2p_bytes"`
	P2PFromSeeder uint64 `json:"p2p_from_seeder_bytes"`
}

// takeReport records a page's totals for the offload statistics. Reports
// for streams the seeder does not seed are dropped, so a page cannot grow
// the server's memory; the answer is 204 either way.
func (p *Player) takeReport(w http.ResponseWriter, r *http.Request) error {
	var rep playerReportBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&rep); err != nil ||
		rep.Session == "" || len(rep.Session) > 64 {
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("bad player report"))
	}
	// Anyone can post a report: clamped, the sum of maxPlayerReports
	// of them cannot wrap around.
	clamp := func(n uint64) uint64 { return min(n, maxReportedBytes) }
	if p.app != nil {
		if s := p.app.Seeder(); s != nil && s.HasStream(rep.Manifest) {
			p.app.offload.report(rep.Session, rep.Manifest, clamp(rep.HTTPBytes), clamp(rep.P2PBytes), clamp(rep.P2PFromSeeder), time.Now())
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
