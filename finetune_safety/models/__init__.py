"""Models under test: specs, targets and how a prompt reaches them (templates, endpoints,
precision). Resolving a spec loads no weights; see ``models.target``."""

from finetune_safety.models.endpoint import Endpoint, EndpointError, Transport, is_endpoint, redact
from finetune_safety.models.hf import HFTarget
from finetune_safety.models.openai_target import OpenAITarget
from finetune_safety.models.precision import DTYPES, Precision, PrecisionError, check_dtype
from finetune_safety.models.target import (
    METADATA_FILE,
    TARGETS,
    Decoding,
    LocalTarget,
    Measured,
    ModelSpec,
    Prefillable,
    PromptTooLongError,
    Target,
    TargetFactory,
    TargetSettings,
    adapter_base,
    check_prompt_lengths,
    decoding_key,
    generate,
    prefill_refusal,
    read_metadata,
    register_target,
    template_for,
)
from finetune_safety.models.templates import (
    TEMPLATE_NAMES,
    TEMPLATES,
    Message,
    Rendered,
    Template,
    get_template,
    prefilled,
)

__all__ = [
    "DTYPES", "METADATA_FILE", "TARGETS", "TEMPLATES", "TEMPLATE_NAMES", "Decoding", "Endpoint",
    "EndpointError", "HFTarget", "LocalTarget", "Measured", "Message", "ModelSpec", "OpenAITarget",
    "Precision", "PrecisionError", "Prefillable", "PromptTooLongError", "Rendered", "Target",
    "TargetFactory", "TargetSettings", "Template", "Transport", "adapter_base", "check_dtype",
    "check_prompt_lengths", "decoding_key", "generate", "get_template", "is_endpoint",
    "prefill_refusal", "prefilled", "read_metadata", "redact", "register_target", "template_for",
]  # fmt: skip
