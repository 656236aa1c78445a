# Every word a reader sees, in English. This catalogue is complete by
# definition: a message missing from another language is taken from here.

## Dates and counts

date-long = { $day } { $month ->
        [1] January
        [2] February
        [3] March
        [4] April
        [5] May
        [6] June
        [7] July
        [8] August
        [9] September
        [10] October
        [11] November
       *[12] December
    } { $year }
helpful-count = { $yes } out of { $total } { $total ->
        [one] reader
       *[other] readers
    } found this helpful

# A label before its value ("Source: …"), with the language's colon.
label = { $text }:{" "}

## Layout of the public pages

nav-archive = Archive
footer-past-reports = Past reports
optional = (optional)
sign-up-again = Sign up again

## Sign-up page

home-title = Subscribe
home-pitch = One report a week: the news that mattered, with our editors' comments. Free, and you can leave with one click.
home-email-label = Email address
home-name-label = Name
home-subscribe-button = Subscribe
home-note = We send you one email to confirm the address. Nothing else arrives until you click it.
signup-accepted-heading = Check your inbox
signup-accepted = Thanks! If the address can receive mail, a confirmation link is on its way. Please check your inbox.
signup-error-form = The form is incomplete: { $detail }
signup-error-throttled = Too many sign-ups from your network; please try again later.
email-error-empty = The email address is empty.
email-error-too-long = The email address is longer than 254 characters.
email-error-control = The email address contains a control character (such as a line break).
email-error-space = The email address contains a space.
email-error-non-ascii = The email address contains non-ASCII characters; write an international domain in its xn-- form.
email-error-no-at = The email address has no @.
email-error-domain = The email address's domain must be a public name such as example.com.
email-error-invalid = The email address is not valid.
name-error-too-long = The name is longer than 100 characters.
name-error-control = The name contains a control character (such as a line break).

## Confirmation page and mail

confirm-title = Confirm your subscription
confirm-prompt = One click and you are on the list for { $site }.
confirm-button = Confirm my subscription
confirmed-heading = You are subscribed
confirmed-message = Thank you for confirming. The next report will arrive in your inbox.
confirm-expired-heading = This link has expired
confirm-expired-message = Confirmation links work for a limited time. Sign up again and we will send a fresh one.
link-invalid-heading = This link is not valid
confirm-invalid-message = The confirmation link is unknown or has already been used. If you are not subscribed yet, sign up again.
confirmation-subject = Please confirm your subscription to { $site }
confirmation-heading = One click to go
confirmation-body = Someone, hopefully you, asked to receive { $site } at this address. Please confirm:
confirmation-body-text = Someone, hopefully you, asked to receive { $site } at this address. Please confirm by opening this link:
confirmation-ignore = If it was not you, ignore this email: without a click, nothing more is sent.
confirmation-never = Never email this address again

## Unsubscribing

unsubscribe-title = Unsubscribe
unsubscribe-prompt = Stop receiving { $site }? You can sign up again at any time.
unsubscribe-button = Unsubscribe
unsubscribed-heading = You are unsubscribed
unsubscribed-message = You will receive no more reports. Changed your mind? You can sign up again at any time.
unsubscribe-invalid-message = The unsubscribe link is damaged. Please use the link from the most recent email, or contact us.

## The report, in the email and the archive

greeting = Hello,
greeting-named = Hi { $name },
report-by = By { $name }
report-edited-by = Edited by { $name }
report-source = Source
report-comment = Comment
feedback-question = Was this report helpful?
feedback-yes = Yes
feedback-no = No
view-in-browser = View in your browser
unsubscribe-link = Unsubscribe
why-you-receive = You receive { $site } because you subscribed and confirmed your address.

## Archive

archive-title = Archive
archive-heading = Past reports
archive-empty = No report has been sent yet.
archive-empty-subscribe = Subscribe to get the first one.
archive-all-reports = ← All reports
archive-subscribe = Subscribe
archive-feed = Atom feed
archive-helpful-question = Was this article helpful?
archive-feedback-label = Reader feedback
report-not-found-heading = No such report
report-not-found-message = There is no published report at this address. The archive lists every one.
page-not-found-heading = No such page
page-not-found-message = Nothing is published at this address. The link may be old or mistyped.

## Feedback

feedback-page-title = Thank you
feedback-confirm-heading = Was “{ $title }” helpful?
feedback-you-answered = You answered:
feedback-answer = { $answer ->
        [yes] helpful
       *[no] not helpful
    }
feedback-record-button = Record my answer: { $answer ->
        [yes] helpful
       *[no] not helpful
    }
feedback-thanks-heading = Thank you!
feedback-recorded = Your answer for “{ $title }” is recorded:
feedback-change-button = Change my answer to { $answer ->
        [yes] helpful
       *[no] not helpful
    }
feedback-comment-thanks = Thanks for your comment; the editors read every one.
feedback-comment-label = What would make it better?
feedback-comment-limit = (optional, up to { $max } characters)
feedback-comment-send = Send comment
feedback-error-heading = Almost there
feedback-your-comment = Your comment
feedback-comment-too-long = Please keep the comment under { $max } characters.
feedback-link-broken-heading = This link does not work
feedback-link-incomplete = The link is incomplete.
feedback-link-invalid = This feedback link is not valid. Please use the link from the email.
feedback-link-no-answer = The link does not say yes or no.
feedback-report-gone = This report no longer exists.

