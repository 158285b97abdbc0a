"""waflow.engine: conversation flows.

The static half — what a flow *is* — lives in `waflow.engine.flows` and is re-exported here:

- models: `FlowDefinition` and one model per node type (`Node` is their union on `type`),
  triggers, answer rules, `Duration` (`"30m"`, `"2h"`);
- loading: `load_flow` / `load_flow_file` / `load_flow_text` / `load_flow_data` → `FlowDefinition`
  or `FlowLoadError` (every problem, with node, field and line);
- checking: `validate_flow(defn)` → `list[FlowProblem]`; `check_flow_text` / `check_flow_files`
  load and validate in one step;
- expressions: `render_text`, `evaluate`, `render_value`, `compile_template`, `compile_expression`
  in a hardened Jinja2 sandbox (`ExpressionError` on any problem);
- versions: `flow_hash`, `canonical_json`, `FlowVersion`;
- drawing: `to_mermaid`, `to_svg`; the JSON Schema: `flow_json_schema`.
"""

from waflow.engine.flows.check import FlowReport, check_flow_file, check_flow_files, check_flow_text
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.durations import Duration, format_duration, parse_duration
from waflow.engine.flows.expressions import (
    CONTEXT_NAMES,
    CompiledExpression,
    CompiledTemplate,
    ExpressionEngine,
    ExpressionError,
    compile_expression,
    compile_template,
    evaluate,
    is_templated,
    make_context,
    references,
    render_text,
    render_value,
)
from waflow.engine.flows.graph import Edge, busy_cycles, edges, reachable
from waflow.engine.flows.loader import load_flow, load_flow_data, load_flow_file, load_flow_text
from waflow.engine.flows.mermaid import to_mermaid
from waflow.engine.flows.nodes import (
    NODE_TYPES,
    SENDING_TYPES,
    Branch,
    Button,
    ButtonsNode,
    ConditionNode,
    EndNode,
    GotoNode,
    HandoffNode,
    HttpNode,
    ListNode,
    ListRow,
    ListSection,
    Location,
    Media,
    MediaHeader,
    MessageNode,
    Node,
    QuestionNode,
    SetNode,
    SubflowNode,
    TemplateNode,
    Transition,
    WaitNode,
)
from waflow.engine.flows.problems import FlowLoadError, FlowProblem, Severity
from waflow.engine.flows.rules import (
    AnswerRule,
    ChoiceRule,
    DateRule,
    EmailRule,
    LocationRule,
    MediaRule,
    NumberRule,
    PhoneRule,
    RegexRule,
    TextRule,
)
from waflow.engine.flows.schema import flow_json_schema
from waflow.engine.flows.svg import PngUnavailable, to_png, to_svg
from waflow.engine.flows.triggers import (
    ApiTrigger,
    FirstMessageTrigger,
    KeywordTrigger,
    PayloadTrigger,
    ReferralTrigger,
    RegexTrigger,
    Trigger,
)
from waflow.engine.flows.validate import has_errors, validate_flow
from waflow.engine.flows.versions import FlowVersion, canonical_json, definition_from_canonical, flow_hash

__all__ = [
    "CONTEXT_NAMES", "NODE_TYPES", "SENDING_TYPES",
    "AnswerRule", "ApiTrigger", "Branch", "Button", "ButtonsNode", "ChoiceRule", "CompiledExpression",
    "CompiledTemplate", "ConditionNode", "DateRule", "Duration", "Edge", "EmailRule", "EndNode",
    "ExpressionEngine", "ExpressionError", "FirstMessageTrigger", "FlowDefinition", "FlowLoadError",
    "FlowProblem", "FlowReport", "FlowVersion", "GotoNode", "HandoffNode", "HttpNode", "KeywordTrigger",
    "ListNode", "ListRow", "ListSection", "Location", "LocationRule", "Media", "MediaHeader", "MediaRule",
    "MessageNode", "Node", "NumberRule", "PayloadTrigger", "PhoneRule", "PngUnavailable", "QuestionNode",
    "ReferralTrigger", "RegexRule", "RegexTrigger", "SetNode", "Severity", "SubflowNode", "TemplateNode",
    "TextRule", "Transition", "Trigger", "WaitNode",
    "busy_cycles", "canonical_json", "check_flow_file", "check_flow_files", "check_flow_text",
    "compile_expression", "compile_template", "definition_from_canonical", "edges", "evaluate",
    "flow_hash", "flow_json_schema", "format_duration", "has_errors", "is_templated", "load_flow",
    "load_flow_data", "load_flow_file", "load_flow_text", "make_context", "parse_duration", "reachable",
    "references", "render_text", "render_value", "to_mermaid", "to_png", "to_svg", "validate_flow",
]  # fmt: skip
