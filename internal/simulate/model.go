package simulate

// This file holds the static catalogue of the simulated contact centre:
// regions, channels, business lines, queues, timing distributions and
// message texts. Shares are targets the tests check; timings are calibrated
// on the public samples in shared/data/real where one fits, as noted.

// region is a city the centre serves; weight is roughly its number of
// subscribers (population and economy), only its ratio to the others matters.
type region struct {
	name   string
	weight float64
}

var regions = []region{
	{"上海", 10}, {"北京", 9.5}, {"重庆", 8}, {"广州", 8}, {"深圳", 8},
	{"成都", 8}, {"武汉", 6}, {"杭州", 6}, {"天津", 5.5}, {"西安", 5.5},
	{"苏州", 5}, {"郑州", 5}, {"南京", 4.5}, {"长沙", 4.5}, {"青岛", 4.5},
	{"沈阳", 4}, {"合肥", 4}, {"昆明", 3.5}, {"大连", 3}, {"厦门", 2.5},
}

// lognorm is a log-normal delay in seconds given by its median and the
// standard deviation of its logarithm, truncated at max (0: no cap).
// Log-normal fits service and reply times well (Brown et al., "Statistical
// analysis of a telephone call center", JASA 2005, on the same bank whose
// day is technion_1day.csv).
type lognorm struct {
	median, sigma, max float64
}

// channel holds what differs between contact channels: how fast each party
// answers, how long a customer waits for a human before giving up, and how
// many turns a conversation takes. sync channels keep an agent busy for the
// whole conversation; email and sms are worked from a backlog, so they do
// not count towards a queue's load.
type channel struct {
	name  string
	share float64
	sync  bool
	// botEntry and transfer weight the channel's bot-first and transfer
	// probabilities around the configured shares (normalised so that the
	// overall shares stay what Config asks for): voice callers press 0 more.
	botEntry, transfer float64

	botReply   lognorm // bot answers a customer message
	custThink  lognorm // customer answers the bot or agent
	agentGreet lognorm // first agent message after agent.assigned
	agentReply lognorm // agent answers a customer message
	wait       lognorm // wait for a human at a queue occupancy of 80%
	patience   lognorm // how long a customer waits before abandoning
	wrap       lognorm // last message to conversation.closed

	botTurns, humanTurns [2]int // inclusive range of exchanges per phase
	csat                 float64
}

// Timing calibration:
//   - wait: technion_1day.csv's served calls waited a median 132 s with a
//     log-sd of 1.15: a bank that was badly understaffed that day. Ours is
//     a centre that meets its target: a log-sd of 0.85 around medians (at
//     the planned occupancy, see engine.congestion) of 4 s for voice and
//     5 s for the chat-like channels, so 97% and 95% of those transfers
//     reach an agent within 20 s. Counting the sms and email transfers too
//     (worked from a backlog, they rarely make 20 s) and the customers who
//     give up, a queue's service level is about 0.91 on an ordinary day.
//     That is above the 80/20 target on purpose: the target is judged per
//     15-minute window, and a queue that only meets it on average misses it
//     in every other window. An incident multiplies these waits, so it
//     still shows at once.
//   - voice humanTurns/custThink/agentReply give a handle time near the
//     technion service times (median 118 s, mean 194 s).
//   - email agentReply and custThink medians are the company-reply (727 s)
//     and customer-reply (988 s) medians of twcs5k.csv; their log-sd there
//     (1.9 and 2.6) comes from a days-long tail that would keep demo
//     conversations open for weeks, so we use 1.2 and cap the tail at 2-4 h.
//   - patience: the callers who hung up in technion_1day.csv had waited a
//     median 57 s, but they are the impatient ones (the patient ones were
//     served before they gave up). Counting the served callers' waits as
//     censored patience (a Kaplan-Meier estimate) gives a patience median of
//     about 5 minutes with a log-sd of about 2: 9% give up within 20 s, 22%
//     within a minute. Voice uses that; chat customers, who can do
//     something else while they wait, twice the median. At the planned
//     occupancy about 2.5% of the voice callers and 1.5% of the chat
//     customers waiting for a human give up (the abandon_rate, over all
//     ended conversations, is about 0.65%), and 10-15% in a queue slowed
//     fourfold.
var channels = []channel{
	{name: "voice", share: 0.34, sync: true, botEntry: 0.85, transfer: 1.3,
		botReply: lognorm{1.2, 0.3, 10}, custThink: lognorm{9, 0.6, 120}, agentGreet: lognorm{2, 0.4, 15},
		agentReply: lognorm{6, 0.6, 120}, wait: lognorm{4, 0.85, 3600}, patience: lognorm{300, 2, 3600},
		wrap: lognorm{8, 0.5, 60}, botTurns: [2]int{1, 3}, humanTurns: [2]int{4, 12}, csat: 0.25},
	{name: "wechat", share: 0.22, sync: true, botEntry: 1.2, transfer: 0.9,
		botReply: lognorm{1.5, 0.4, 20}, custThink: lognorm{18, 0.8, 600}, agentGreet: lognorm{8, 0.5, 60},
		agentReply: lognorm{22, 0.7, 600}, wait: lognorm{5, 0.85, 3600}, patience: lognorm{600, 2, 7200},
		wrap: lognorm{30, 0.6, 300}, botTurns: [2]int{1, 4}, humanTurns: [2]int{2, 7}, csat: 0.35},
	{name: "app", share: 0.18, sync: true, botEntry: 1.2, transfer: 0.9,
		botReply: lognorm{1.5, 0.4, 20}, custThink: lognorm{18, 0.8, 600}, agentGreet: lognorm{8, 0.5, 60},
		agentReply: lognorm{22, 0.7, 600}, wait: lognorm{5, 0.85, 3600}, patience: lognorm{600, 2, 7200},
		wrap: lognorm{30, 0.6, 300}, botTurns: [2]int{1, 4}, humanTurns: [2]int{2, 7}, csat: 0.40},
	{name: "web", share: 0.10, sync: true, botEntry: 1.1, transfer: 1.0,
		botReply: lognorm{1.5, 0.4, 20}, custThink: lognorm{20, 0.8, 600}, agentGreet: lognorm{8, 0.5, 60},
		agentReply: lognorm{22, 0.7, 600}, wait: lognorm{5, 0.85, 3600}, patience: lognorm{600, 2, 7200},
		wrap: lognorm{30, 0.6, 300}, botTurns: [2]int{1, 4}, humanTurns: [2]int{2, 7}, csat: 0.35},
	{name: "chat", share: 0.08, sync: true, botEntry: 1.1, transfer: 1.0,
		botReply: lognorm{1.5, 0.4, 20}, custThink: lognorm{18, 0.8, 600}, agentGreet: lognorm{8, 0.5, 60},
		agentReply: lognorm{22, 0.7, 600}, wait: lognorm{5, 0.85, 3600}, patience: lognorm{600, 2, 7200},
		wrap: lognorm{30, 0.6, 300}, botTurns: [2]int{1, 4}, humanTurns: [2]int{2, 7}, csat: 0.35},
	{name: "sms", share: 0.05, sync: false, botEntry: 1.1, transfer: 0.8,
		botReply: lognorm{3, 0.5, 60}, custThink: lognorm{60, 0.9, 3600}, agentGreet: lognorm{30, 0.6, 600},
		agentReply: lognorm{45, 0.8, 3600}, wait: lognorm{30, 1.0, 7200}, patience: lognorm{1800, 0.8, 14400},
		wrap: lognorm{120, 0.6, 1800}, botTurns: [2]int{1, 3}, humanTurns: [2]int{1, 4}, csat: 0.20},
	{name: "email", share: 0.03, sync: false, botEntry: 1.0, transfer: 0.6,
		botReply: lognorm{20, 0.6, 300}, custThink: lognorm{988, 1.2, 14400}, agentGreet: lognorm{727, 1.2, 7200},
		agentReply: lognorm{727, 1.2, 7200}, wait: lognorm{480, 1.0, 14400}, patience: lognorm{86400, 0.5, 0},
		wrap: lognorm{600, 0.8, 7200}, botTurns: [2]int{1, 2}, humanTurns: [2]int{1, 3}, csat: 0.15},
}

// line is a business line; resolved scales the probability that a
// conversation about it ends resolved (technical lines are harder).
type line struct {
	name     string
	share    float64
	resolved float64
	queue    string // its first-line queue
}

var lines = []line{
	{"mobile", 0.35, 1.00, "mobile-l1"},
	{"broadband", 0.28, 0.90, "broadband-l1"},
	{"billing", 0.22, 1.05, "billing-l1"},
	{"tv", 0.08, 1.00, "tv-l1"},
	{"enterprise", 0.07, 0.95, "enterprise-l1"},
}

// Queues (skill groups). vip takes high-value customers of every line;
// retention takes cancellation requests of the consumer lines.
var queues = []string{"mobile-l1", "broadband-l1", "billing-l1", "tv-l1", "enterprise-l1", "vip", "retention"}

const (
	vipShare       = 0.06
	retentionShare = 0.04
	queueVIP       = 5
	queueRetention = 6
)

// Outcome probabilities before the business-line factor.
const (
	botResolved   = 0.80 // bot-contained conversations closed resolved
	humanResolved = 0.86 // conversations an agent handled closed resolved
	// Complaint probability by outcome: most complaints come from
	// conversations that failed the customer.
	complaintResolved   = 0.004
	complaintUnresolved = 0.07
	// targetOccupancy is the agent occupancy staffing plans for; waits are
	// at their channel's median there.
	targetOccupancy = 0.8
	// safetyStaffing is β of the square-root staffing rule (see agentsFor).
	// It asks for more agents than the target occupancy does in the queues
	// with fewer than 16β² = 64 agents busy.
	safetyStaffing = 2
	minAgents      = 2
)

// transferReasons are weighted like a typical bot's hand-over log: most
// customers ask for a human outright.
var transferReasons = []struct {
	name   string
	weight float64
}{
	{"customer_request", 0.45}, {"bot_unable", 0.30}, {"negative_sentiment", 0.15}, {"policy", 0.10},
}

// complaintCategories by business line, weighted.
type weighted struct {
	name   string
	weight float64
}

var complaintCategories = [][]weighted{
	{{"network_outage", 0.25}, {"billing_dispute", 0.2}, {"package_misled", 0.2}, {"service_attitude", 0.15}, {"long_wait", 0.1}, {"unresolved_issue", 0.1}},
	{{"network_outage", 0.35}, {"slow_speed", 0.25}, {"installation_delay", 0.15}, {"service_attitude", 0.1}, {"long_wait", 0.1}, {"unresolved_issue", 0.05}},
	{{"billing_dispute", 0.6}, {"service_attitude", 0.15}, {"unresolved_issue", 0.15}, {"long_wait", 0.1}},
	{{"network_outage", 0.3}, {"billing_dispute", 0.25}, {"service_attitude", 0.2}, {"unresolved_issue", 0.25}},
	{{"network_outage", 0.4}, {"unresolved_issue", 0.3}, {"billing_dispute", 0.15}, {"long_wait", 0.15}},
}

// Message texts: short, mostly Chinese, as a Chinese operator's chat logs
// look; a few English lines because expatriate customers write in.
var (
	openingTexts = [][]string{
		{"手机没有信号", "我想换个便宜点的套餐", "流量怎么用得这么快？", "国际漫游怎么开通", "How do I port my number to you?", "副卡怎么办理"},
		{"家里宽带又断网了", "网速特别慢，晚上视频都打不开", "光猫一直红灯闪", "想预约宽带安装", "My fibre connection keeps dropping"},
		{"这个月话费怎么多扣了30元？", "我想查一下上个月的账单", "自动扣费失败了怎么办", "Why was I charged twice this month?", "发票怎么开？"},
		{"机顶盒开不了机", "IPTV 一直在缓冲", "怎么退订付费频道", "遥控器配对不上"},
		{"公司专线中断了，影响业务", "想咨询企业宽带报价", "Our leased line is down", "云主机续费问题"},
	}
	retentionTexts = []string{"我要销户", "想取消套餐，太贵了", "别家更便宜，我想携号转网"}
	customerTexts  = []string{"好的", "还是不行", "已经重启过了", "要多久才能处理好？", "谢谢", "能不能快一点", "OK, thanks", "我的号码是138****5678", "收到", "那我再试试"}
	negativeTexts  = []string{"这已经是第三次联系你们了", "你们的服务太差了", "我要投诉", "到底有没有人管？", "This is ridiculous"}
	abusiveTexts   = []string{"你们什么破服务！", "骗子公司！", "垃圾客服，气死我了", "This is a scam!!"}
	botTexts       = []string{"您好，我是智能客服小C，请问有什么可以帮您？", "请您提供一下手机号码或宽带账号", "已为您查询到相关信息，请稍候", "建议您先重启光猫，等待2分钟后再试", "您可以在App“我的-账单”中查看明细", "抱歉，我没有理解您的意思，能换个说法吗？"}
	handoverText   = "正在为您转接人工客服，请稍候"
	agentTexts     = []string{"我这边帮您查一下，请稍等", "已经为您提交工单，24小时内会有工程师联系您", "多扣的费用已经为您申请退回", "非常抱歉给您带来不便", "请问还有其他可以帮您的吗？", "Sorry for the trouble, let me check that for you", "已经帮您重新开通了"}
	agentGreeting  = "您好，我是人工客服，很高兴为您服务"
)

const botID = "bot-xiaoc"

func regionIndex(name string) int {
	for i, r := range regions {
		if r.name == name {
			return i
		}
	}
	return -1
}

func queueIndex(name string) int {
	for i, q := range queues {
		if q == name {
			return i
		}
	}
	return -1
}

func lineIndex(name string) int {
	for i, l := range lines {
		if l.name == name {
			return i
		}
	}
	return -1
}
