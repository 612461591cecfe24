"""Push notifications (spec: Client-Server API, "Push Notifications"; Push Gateway API).

Pure parts (no Twisted): ``default_rules`` (the server-default rules), ``rulesets``
(a user's rules: defaults merged with their own changes, and the edits the push rules
API makes), ``evaluator`` (conditions and actions). The rest is the glue that
evaluates each committed event (``room_evaluation``) and delivers to push gateways
(``pushers``, ``delivery``).
"""
