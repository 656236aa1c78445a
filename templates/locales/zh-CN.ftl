# 读者看到的每一句话，简体中文版。缺少的条目会自动使用英文版。

## 日期与计数

date-long = { $year }年{ $month }月{ $day }日
helpful-count = { $total } 位读者中有 { $yes } 位认为有帮助

# 标签与其后的冒号（“来源：”）。
label = { $text }：

## 公开页面的版式

nav-archive = 往期
footer-past-reports = 往期报告
optional = （选填）
sign-up-again = 重新订阅

## 订阅页

home-title = 订阅
home-pitch = 每周一期：本周要闻，附编辑点评。免费订阅，随时一键退订。
home-email-label = 电子邮件地址
home-name-label = 称呼
home-subscribe-button = 订阅
home-note = 我们会先发一封邮件确认地址。您点击确认之前，不会收到任何其他邮件。
signup-accepted-heading = 请查收邮件
signup-accepted = 谢谢！如果该地址可以收信，确认链接已经发出，请查看收件箱。
signup-error-form = 表单不完整，请填写电子邮件地址。
signup-error-throttled = 来自您所在网络的订阅请求过多，请稍后再试。
email-error-empty = 电子邮件地址为空。
email-error-too-long = 电子邮件地址超过 254 个字符。
email-error-control = 电子邮件地址包含控制字符（例如换行）。
email-error-space = 电子邮件地址包含空格。
email-error-non-ascii = 电子邮件地址包含非 ASCII 字符；国际化域名请写成 xn-- 形式。
email-error-no-at = 电子邮件地址缺少 @。
email-error-domain = 电子邮件地址的域名必须是公开域名，例如 example.com。
email-error-invalid = 电子邮件地址无效。
name-error-too-long = 称呼超过 100 个字符。
name-error-control = 称呼包含控制字符（例如换行）。

## 确认页与确认邮件

confirm-title = 确认订阅
confirm-prompt = 点击一下，即可订阅{ $site }。
confirm-button = 确认订阅
confirmed-heading = 订阅成功
confirmed-message = 感谢您的确认。下一期报告将发送到您的收件箱。
confirm-expired-heading = 链接已过期
confirm-expired-message = 确认链接只在一段时间内有效。请重新订阅，我们会发送新的链接。
link-invalid-heading = 链接无效
confirm-invalid-message = 该确认链接不存在或已被使用。如果您尚未订阅，请重新订阅。
confirmation-subject = 请确认订阅{ $site }
confirmation-heading = 只差一步
confirmation-body = 有人（希望是您本人）申请用这个地址接收{ $site }。请确认：
confirmation-body-text = 有人（希望是您本人）申请用这个地址接收{ $site }。请打开以下链接确认：
confirmation-ignore = 如果不是您本人操作，请忽略本邮件：不点击链接，就不会再收到任何邮件。
confirmation-never = 不再向此地址发送任何邮件

## 退订

unsubscribe-title = 退订
unsubscribe-prompt = 不再接收{ $site }？您可以随时重新订阅。
unsubscribe-button = 退订
unsubscribed-heading = 已退订
unsubscribed-message = 您将不再收到报告。改变主意了？随时可以重新订阅。
unsubscribe-invalid-message = 该退订链接已损坏。请使用最近一封邮件中的链接，或与我们联系。

## 报告（邮件与往期页面）

greeting = 您好！
greeting-named = { $name }，您好！
report-by = 文／{ $name }
report-edited-by = 编辑／{ $name }
report-source = 来源
report-comment = 点评
feedback-question = 本期报告对您有帮助吗？
feedback-yes = 有帮助
feedback-no = 没帮助
view-in-browser = 在浏览器中查看
unsubscribe-link = 退订
why-you-receive = 您收到{ $site }，是因为您订阅并确认了这个地址。

## 往期

archive-title = 往期
archive-heading = 往期报告
archive-empty = 还没有发出任何报告。
archive-empty-subscribe = 订阅后即可收到第一期。
archive-all-reports = ← 全部报告
archive-subscribe = 订阅
archive-feed = Atom 订阅源
archive-helpful-question = 这篇文章对您有帮助吗？
archive-feedback-label = 读者反馈
report-not-found-heading = 没有这期报告
report-not-found-message = 这个地址没有已发布的报告。往期页面列出了全部报告。
page-not-found-heading = 没有这个页面
page-not-found-message = 这个地址没有发布任何内容。链接可能已过期或输入有误。

## 反馈

feedback-page-title = 谢谢
feedback-confirm-heading = “{ $title }”对您有帮助吗？
feedback-you-answered = 您的回答：
feedback-answer = { $answer ->
        [yes] 有帮助
       *[no] 没帮助
    }
feedback-record-button = 提交我的回答：{ $answer ->
        [yes] 有帮助
       *[no] 没帮助
    }
feedback-thanks-heading = 谢谢！
feedback-recorded = 您对“{ $title }”的回答已记录：
feedback-change-button = 把回答改为：{ $answer ->
        [yes] 有帮助
       *[no] 没帮助
    }
feedback-comment-thanks = 感谢您的意见，编辑会逐条阅读。
feedback-comment-label = 怎样能做得更好？
feedback-comment-limit = （选填，最多 { $max } 个字）
feedback-comment-send = 发送意见
feedback-error-heading = 还差一点
feedback-your-comment = 您的意见
feedback-comment-too-long = 意见请不要超过 { $max } 个字。
feedback-link-broken-heading = 链接无法使用
feedback-link-incomplete = 链接不完整。
feedback-link-invalid = 该反馈链接无效，请使用邮件中的链接。
feedback-link-no-answer = 链接中没有“有帮助”或“没帮助”的回答。
feedback-report-gone = 这期报告已不存在。

