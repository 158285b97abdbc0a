"""Which flow a message starts when the contact has no session.

Tried in this order, each over the active flows in id order: a template quick-reply `payload`,
an ad `referral`, an exact `keyword`, a `regex`, then `any_first_message` (the fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from waflow.canonical import InboundMessage
from waflow.engine.flows.triggers import (
    FirstMessageTrigger,
    KeywordTrigger,
    PayloadTrigger,
    ReferralTrigger,
    RegexTrigger,
)
from waflow.engine.runtime.deploy import Deployed


@dataclass(slots=True)
class TriggerIndex:
    keywords: dict[str, Deployed] = field(default_factory=dict)
    payloads: dict[str, Deployed] = field(default_factory=dict)
    regexes: list[tuple[RegexTrigger, Deployed]] = field(default_factory=list)
    referrals: list[tuple[ReferralTrigger, Deployed]] = field(default_factory=list)
    first: Deployed | None = None

    @classmethod
    def build(cls, active: Mapping[str, Deployed]) -> TriggerIndex:
        index = cls()
        for flow_id in sorted(active):
            deployed = active[flow_id]
            for trigger in deployed.definition.triggers:
                match trigger:
                    case KeywordTrigger():
                        for word in trigger.keyword:
                            index.keywords.setdefault(word.strip().casefold(), deployed)
                    case PayloadTrigger():
                        for payload in trigger.payload:
                            index.payloads.setdefault(payload, deployed)
                    case RegexTrigger():
                        index.regexes.append((trigger, deployed))
                    case ReferralTrigger():
                        index.referrals.append((trigger, deployed))
                    case FirstMessageTrigger():
                        if index.first is None:
                            index.first = deployed
        return index

    def match(self, msg: InboundMessage) -> Deployed | None:
        if msg.payload is not None and msg.payload in self.payloads:
            return self.payloads[msg.payload]
        if msg.referral:
            for referral, deployed in self.referrals:
                if referral.matches(msg.referral):
                    return deployed
        if msg.text is not None:
            hit = self.keywords.get(msg.text.strip().casefold())
            if hit is not None:
                return hit
            for regex, deployed in self.regexes:
                if regex.matches(msg.text):
                    return deployed
        return self.first


class Triggers:
    """The trigger index of the catalog's active set, rebuilt when that set changes."""

    def __init__(self) -> None:
        self._source: Mapping[str, Deployed] | None = None
        self._index = TriggerIndex()

    def match(self, active: Mapping[str, Deployed], msg: InboundMessage) -> Deployed | None:
        if active is not self._source:
            self._index = TriggerIndex.build(active)
            self._source = active
        return self._index.match(msg)
