// Package dingtalk delivers notifications to a DingTalk (钉钉) custom group
// robot as markdown messages.
//
// Signing ("加签"): with a secret, the URL gets timestamp (Unix
// milliseconds) and sign = URL-encoded base64(HMAC-SHA256(key = secret,
// message = timestamp + "\n" + secret)); DingTalk rejects a timestamp more
// than an hour off.
//
// The robot answers HTTP 200 with {"errcode":0,"errmsg":"ok"}; any other
// errcode is a failure. Retry decisions:
//
//	-1       system busy                         retry
//	130101   send too fast (over 20 msgs/minute) retry
//	410100   send too fast, throttled            retry
//	310000   keyword missing, sign mismatch or
//	         IP not whitelisted (see errmsg)     no retry: configuration
//	300001   token does not exist                no retry
//	400101,
//	400102   robot missing or disabled           no retry
//	430101-
//	430104   unsafe link, text or image          no retry: content
//	other    unknown                             no retry (errmsg in error)
//
// HTTP 408, 429 and 5xx and transport errors are retried. A robot accepts
// 20 messages a minute: the notifier's token bucket makes Notify wait for
// a slot, within its context, rather than be throttled.
package dingtalk
