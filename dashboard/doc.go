// Package dashboard serves the cockpit's pages: the live wall display
// (/wall), the quality team's drill-down (/quality) and alert handling
// (/alerts), in Chinese (zh-CN, the default) and English.
//
// The pages are server-rendered with html/template; chart options are
// built with go-echarts and handed to the page as JSON through
// html/template's script escaping, never as raw markup. Live data comes
// from the api package's REST endpoints and its Server-Sent Events stream;
// the page scripts (plain ES, no build step) put every value into the DOM
// with textContent. ECharts itself (npm echarts@5.6.0, pinned) is embedded
// in the binary and served under /assets/, so the pages work offline.
package dashboard
