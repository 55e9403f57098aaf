package dashboard

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Deps are what the pages need from the rest of the product.
type Deps struct {
	// Rules returns the rule set in force; the wall colours its tiles by
	// the threshold rules in it. Nil, or a nil set, means the defaults.
	Rules func() *rules.RuleSet
	// APIBase is the path of the REST API the page scripts call
	// (default "/api/v1").
	APIBase string
	// TileWindow is the window of the stream's snapshot (api
	// stream_window), which the tiles name. Default 15m.
	TileWindow time.Duration
}

// qualityParams are the query parameters /quality takes (and alert links
// use): the time range, the filters, the breakdown and the alert id.
var qualityParams = []string{"from", "to", "region", "queue", "channel", "business_line", "agent", "dimension", "metric", "alert", "conversation"}

// pageData is what every page template gets.
type pageData struct {
	Lang, OtherLang, Page, Title string
	T                            func(string) string
	Nav                          []navLink
	// Config is handed to the page script as JSON by html/template,
	// which escapes it for the script context.
	Config pageConfig
	Tiles  []Tile
	Charts []Chart
	Query  map[string]string
}

type navLink struct {
	Href, Label string
	Current     bool
}

// pageConfig is the page script's configuration.
type pageConfig struct {
	Page    string            `json:"page"`
	Lang    string            `json:"lang"`
	API     string            `json:"api"`
	Text    map[string]string `json:"text"`
	Tiles   []Tile            `json:"tiles,omitempty"`
	Charts  []Chart           `json:"charts"`
	Metrics []metricInfo      `json:"metrics"`
	Query   map[string]string `json:"query,omitempty"`
	// Now is the server's clock when the page was made: the wall judges
	// the age of the stream's data by the server's clock, not the
	// display's.
	Now time.Time `json:"now"`
	// Next is where the sign-in page leads afterwards, checked by
	// SafeNext.
	Next string `json:"next,omitempty"`
}

type metricInfo struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Label string `json:"label"`
}

type dashboard struct {
	deps  Deps
	pages map[string]*template.Template
}

// Mount adds the pages (/wall, /quality, /alerts, / redirecting to the
// wall) and the embedded assets (/assets/…) to r.
func Mount(r *gin.Engine, deps Deps) error {
	if r == nil {
		return errors.New("dashboard: a gin engine is required")
	}
	if deps.APIBase == "" {
		deps.APIBase = "/api/v1"
	}
	if deps.TileWindow <= 0 {
		deps.TileWindow = 15 * time.Minute
	}
	d := &dashboard{deps: deps, pages: map[string]*template.Template{}}
	for _, p := range []string{"wall", "quality", "alerts", "login"} {
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("dashboard: cannot parse the %s page: %w", p, err)
		}
		d.pages[p] = t
	}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return fmt.Errorf("dashboard: assets: %w", err)
	}
	// Some systems' MIME tables lack these; the wall must not depend on it.
	_ = mime.AddExtensionType(".js", "text/javascript; charset=utf-8")
	_ = mime.AddExtensionType(".css", "text/css; charset=utf-8")
	assets := http.StripPrefix(strings.TrimSuffix(assetsPath, "/"), http.FileServer(http.FS(sub)))
	r.GET(assetsPath+"*file", func(c *gin.Context) {
		if strings.HasSuffix(c.Param("file"), "/") {
			c.Status(http.StatusNotFound) // no directory listings
			return
		}
		// The assets change only with the binary.
		c.Header("Cache-Control", "public, max-age=3600")
		assets.ServeHTTP(c.Writer, c.Request)
	})
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/wall") })
	r.GET("/wall", d.page("wall"))
	r.GET("/quality", d.page("quality"))
	r.GET("/alerts", d.page("alerts"))
	r.GET("/login", d.page("login"))
	return nil
}

// page renders one page in the request's language.
func (d *dashboard) page(name string) gin.HandlerFunc {
	return func(c *gin.Context) {
		lang := language(c.Request)
		data := d.data(name, lang, c.Request.URL.Query())
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Header("Content-Language", lang)
		c.Header("Vary", "Accept-Language")
		c.Header("Cache-Control", "no-store")
		// Everything the page loads comes from this server.
		c.Header("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'")
		c.Header("X-Content-Type-Options", "nosniff")
		c.Status(http.StatusOK)
		if err := d.pages[name].Execute(c.Writer, data); err != nil {
			_ = c.Error(err) // headers are out; the client sees a cut page
		}
	}
}

func (d *dashboard) data(name, lang string, q url.Values) pageData {
	other := LangEN
	if lang == LangEN {
		other = LangZH
	}
	data := pageData{Lang: lang, OtherLang: other, Page: name, Title: tr(lang, "title."+name),
		T: func(k string) string { return tr(lang, k) }}
	for _, p := range []string{"wall", "quality", "alerts"} {
		data.Nav = append(data.Nav, navLink{Href: "/" + p + "?lang=" + url.QueryEscape(lang), Label: tr(lang, "nav."+p), Current: p == name})
	}
	cfg := pageConfig{Page: name, Lang: lang, API: d.deps.APIBase, Text: dictionary(lang), Now: time.Now().UTC()}
	for _, m := range kpi.Metrics {
		cfg.Metrics = append(cfg.Metrics, metricInfo{Name: m.Name, Kind: string(m.Kind), Label: metricLabel(lang, m.Name)})
	}
	switch name {
	case "wall":
		var rs *rules.RuleSet
		if d.deps.Rules != nil {
			rs = d.deps.Rules()
		}
		cfg.Tiles = tiles(lang, rs, d.deps.TileWindow)
		cfg.Charts = wallCharts(lang)
	case "quality":
		cfg.Charts = qualityCharts(lang)
		cfg.Query = map[string]string{}
		for _, k := range qualityParams {
			if v := q.Get(k); v != "" && len(v) <= 256 {
				cfg.Query[k] = v
			}
		}
	case "login":
		cfg.Charts = []Chart{}
		cfg.Next = SafeNext(q.Get("next"))
	default:
		cfg.Charts = []Chart{}
	}
	data.Config, data.Tiles, data.Charts, data.Query = cfg, cfg.Tiles, cfg.Charts, cfg.Query
	return data
}
