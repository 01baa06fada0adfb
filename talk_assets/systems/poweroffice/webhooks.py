"""PowerOffice GO: no webhooks, so polling only.

The PowerOffice GO v2 API description we build against (/work/shared/reference/poweroffice-go-v2
.openapi.yaml) documents no webhook, subscription or change-notification endpoint (its only
"notifications" are payment reminders sent to customers), and the vendor documentation we could
search says nothing of push notifications. Changes in PowerOffice GO are therefore found by the
polling sensor at its normal interval (`TALK_POLL_INTERVAL_S` / `TALK_POWEROFFICE_POLL_INTERVAL_S`),
which webhooks being on for other systems does not lengthen.
"""

SUPPORTED = False
