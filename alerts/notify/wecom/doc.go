// Package wecom delivers notifications to a WeCom (企业微信) group robot as
// markdown messages.
//
// The robot's URL carries its key and there is no signature. Markdown
// content is capped at 4096 bytes of UTF-8; longer messages are cut at a
// line or rune boundary and marked with "…". The robot answers HTTP 200
// with {"errcode":0,"errmsg":"ok"}; any other errcode is a failure.
// Retry decisions:
//
//	-1      system busy                  retry
//	45009   API frequency out of limit   retry
//	93000   invalid webhook URL or key   no retry
//	93008   robot not in the group       no retry
//	40008,
//	40058,
//	44004   invalid or empty message     no retry
//	other   unknown                      no retry (errmsg in error)
//
// HTTP 408, 429 and 5xx and transport errors are retried. A robot accepts
// 20 messages a minute: a token bucket makes Notify wait for a slot,
// within its context, rather than be throttled.
package wecom
