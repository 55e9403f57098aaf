package dashboard

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Languages the pages are written in.
const (
	LangZH = "zh-CN"
	LangEN = "en"
)

// language picks the page language: ?lang= first, then Accept-Language,
// zh-CN when neither names a language we have.
func language(r *http.Request) string {
	if l, ok := matchLang(r.URL.Query().Get("lang")); ok {
		return l
	}
	type pref struct {
		tag string
		q   float64
	}
	var prefs []pref
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if tag != "" && q > 0 {
			prefs = append(prefs, pref{tag, q})
		}
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	for _, p := range prefs {
		if l, ok := matchLang(p.tag); ok {
			return l
		}
	}
	return LangZH
}

func matchLang(tag string) (string, bool) {
	t := strings.ToLower(tag)
	switch {
	case t == "zh" || strings.HasPrefix(t, "zh-") || strings.HasPrefix(t, "zh_"):
		return LangZH, true
	case t == "en" || strings.HasPrefix(t, "en-") || strings.HasPrefix(t, "en_"):
		return LangEN, true
	}
	return "", false
}

// text is the page vocabulary: key → [zh-CN, en]. Metric names come from
// the kpi registry instead.
var text = map[string][2]string{
	"title.wall":       {"客服实时驾驶舱", "Customer service cockpit"},
	"title.quality":    {"质量分析", "Quality analysis"},
	"title.alerts":     {"告警", "Alerts"},
	"title.login":      {"登录", "Sign in"},
	"login.explain":    {"请输入管理员发放的访问令牌。登录在本浏览器保持 30 天。", "Enter the access token your administrator gave you. This browser stays signed in for 30 days."},
	"login.token":      {"访问令牌", "Access token"},
	"login.submit":     {"登录", "Sign in"},
	"login.failed":     {"登录失败", "Sign-in failed"},
	"signed_out":       {"未登录", "Not signed in"},
	"nav.wall":         {"大屏", "Wall"},
	"nav.quality":      {"质量分析", "Quality"},
	"nav.alerts":       {"告警", "Alerts"},
	"asof":             {"数据时间", "data as of"},
	"stale":            {"数据已过期", "stale"},
	"catching_up":      {"数据接入落后 %s 秒", "ingest %s s behind"},
	"catching_up_min":  {"数据接入落后 %s 分钟", "ingest %s min behind"},
	"connecting":       {"连接中…", "connecting…"},
	"reconnecting":     {"重新连接中…", "reconnecting…"},
	"live":             {"实时", "live"},
	"no_alerts":        {"当前无告警", "No firing alerts"},
	"alerts_unknown":   {"告警状态未知（自 %s 起）", "Alert state unknown since %s"},
	"unknown_alerts":   {"告警状态未知", "Alert state unknown"},
	"last_known":       {"最后已知：", "last known:"},
	"unknown":          {"数据未知", "unknown"},
	"unknown_since":    {"自 %s 起数据未知", "unknown since %s"},
	"firing":           {"告警中", "Firing"},
	"trend.times":      {"响应时长 P90（近60分钟，秒）", "Response times p90 (last 60 min, s)"},
	"trend.rates":      {"关键比率（近60分钟，%）", "Key rates (last 60 min, %)"},
	"regions":          {"各地区投诉排名（近60分钟）", "Complaints by region (last 60 min)"},
	"sev.critical":     {"严重", "critical"},
	"sev.warning":      {"警告", "warning"},
	"sev.info":         {"提示", "info"},
	"from":             {"开始", "From"},
	"to":               {"结束", "To"},
	"region":           {"地区", "Region"},
	"queue":            {"队列", "Queue"},
	"channel":          {"渠道", "Channel"},
	"business_line":    {"业务线", "Business line"},
	"agent":            {"坐席", "Agent"},
	"dimension":        {"分组维度", "Break down by"},
	"metric":           {"指标", "Metric"},
	"apply":            {"查询", "Apply"},
	"export":           {"导出 CSV", "Export CSV"},
	"breakdown":        {"分组对比", "Breakdown"},
	"conversations":    {"会话列表", "Conversations"},
	"timeline":         {"会话时间线", "Conversation timeline"},
	"from_alert":       {"来自告警", "From alert"},
	"key":              {"分组", "Group"},
	"started":          {"开始时间", "Started"},
	"state":            {"状态", "State"},
	"resolved":         {"已解决", "Resolved"},
	"transferred":      {"转人工", "Transferred"},
	"closed":           {"已结束", "Closed"},
	"abandoned":        {"已放弃", "Abandoned"},
	"open":             {"进行中", "Open"},
	"more":             {"加载更多", "Load more"},
	"click_hint":       {"点击柱形或表格行查看会话", "Click a bar or a row to see its conversations"},
	"time":             {"时间", "Time"},
	"type":             {"事件", "Event"},
	"actor":            {"发起方", "Actor"},
	"detail":           {"内容", "Detail"},
	"firing_alerts":    {"当前告警", "Firing alerts"},
	"past_alerts":      {"历史告警（近7天）", "Past alerts (last 7 days)"},
	"severity":         {"级别", "Severity"},
	"rule":             {"规则", "Rule"},
	"labels":           {"标签", "Labels"},
	"value":            {"当前值 / 期望", "Value / expected"},
	"explanation":      {"说明", "Explanation"},
	"since":            {"开始于", "Since"},
	"ended":            {"结束于", "Resolved at"},
	"ack":              {"确认", "Ack"},
	"acked":            {"已确认", "Acked"},
	"your_name":        {"你的名字", "Your name"},
	"note":             {"备注", "Note"},
	"drill":            {"分析", "Analyse"},
	"silences":         {"静默规则", "Silences"},
	"new_silence":      {"新建静默", "New silence"},
	"matchers":         {"匹配条件（每行一个，如 region=\"广州\"）", "Matchers (one per line, e.g. region=\"Guangzhou\")"},
	"duration":         {"时长", "Duration"},
	"comment":          {"说明", "Comment"},
	"created_by":       {"创建人", "Created by"},
	"create":           {"创建", "Create"},
	"expire":           {"结束", "Expire"},
	"ends":             {"结束时间", "Ends"},
	"active_silence":   {"生效中", "active"},
	"expired":          {"已结束", "expired"},
	"none":             {"无", "none"},
	"error":            {"出错了", "Error"},
	"saved":            {"已保存", "Saved"},
	"duration.1h":      {"1 小时", "1 hour"},
	"duration.2h":      {"2 小时", "2 hours"},
	"duration.4h":      {"4 小时", "4 hours"},
	"duration.12h":     {"12 小时", "12 hours"},
	"duration.24h":     {"1 天", "1 day"},
	"tile.window.min":  {"近%d分钟", "last %d min"},
	"tile.window.h":    {"近%d小时", "last %d h"},
	"tile.now":         {"当前", "now"},
	"loading":          {"加载中…", "loading…"},
	"no_data":          {"无数据", "no data"},
	"other_lang":       {"English", "中文"},
	"other_lang_code":  {"en", "zh-CN"},
	"ack_by_required":  {"请填写名字", "Please enter your name"},
	"matchers_missing": {"请至少填写一个匹配条件", "Please enter at least one matcher"},
}

// tr returns the text of key in lang, the key itself when it is unknown.
func tr(lang, key string) string {
	t, ok := text[key]
	if !ok {
		return key
	}
	if lang == LangEN {
		return t[1]
	}
	return t[0]
}

// dictionary is the whole vocabulary in one language, for page scripts.
func dictionary(lang string) map[string]string {
	out := make(map[string]string, len(text))
	for k := range text {
		out[k] = tr(lang, k)
	}
	return out
}
