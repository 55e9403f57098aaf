// Package feishu delivers notifications to a Feishu (飞书) or Lark custom
// bot: an interactive card whose header colour follows severity (red for
// critical or error, orange for warning, blue otherwise, green when all is
// resolved), or a rich-text "post", or plain text.
//
// Signing (签名校验), per Feishu's custom-bot guide
// (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, "签名校验"):
// the body gets "timestamp" (Unix seconds, as a string) and "sign" =
// base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = empty)).
// Note the key/message order is the reverse of DingTalk's. Feishu rejects
// a timestamp more than an hour off.
//
// The bot answers {"code":0,"msg":"success"} (older deployments:
// {"StatusCode":0,"StatusMessage":"success"}); any other code is a
// failure. Retry decisions:
//
//	11232   frequency limited (100/min, 5/s)     retry
//	9499    too many requests / bad request      retry, unless HTTP 400
//	19021   signature mismatch or stale time     no retry
//	19022   IP not allowed                       no retry
//	19024   keyword missing                      no retry
//	19001,
//	19002,
//	19007   bad token, params, bot disabled      no retry
//	other   unknown                              no retry (msg in error)
//
// HTTP 408, 429, 5xx and transport errors are retried. A token bucket
// (default 100 a minute, bursts of 5) makes Notify wait for a slot.
package feishu
