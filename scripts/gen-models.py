#!/usr/bin/env python3
"""Writes src/protocol/models/*.json: botocore's service models without documentation.

The protocol layer reads these to turn query-protocol forms into JSON-shaped documents, to
render XML responses and to map CBOR. botocore dropped SQS's query-protocol names (locationName)
when SQS moved to JSON 1.0; older SDKs and the CLI v1 still speak query, so the names they use
are put back here from the pre-2023 SQS model.

Run: python3 scripts/gen-models.py   (needs botocore installed)
"""
import gzip, json, os
import botocore

ROOT = os.path.join(os.path.dirname(botocore.__file__), "data")
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "protocol", "models")
DROP = {"documentation", "documentationUrl", "examples", "deprecatedMessage", "box", "pattern", "enum", "min", "max", "sensitive"}

def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k not in DROP}
    if isinstance(o, list):
        return [strip(x) for x in o]
    return o

SQS_MEMBER_NAMES = {  # (structure, member) -> query name
    ("CreateQueueRequest", "Attributes"): "Attribute",
    ("CreateQueueRequest", "tags"): "Tag",
    ("GetQueueAttributesResult", "Attributes"): "Attribute",
    ("SetQueueAttributesRequest", "Attributes"): "Attribute",
    ("Message", "Attributes"): "Attribute",
    ("Message", "MessageAttributes"): "MessageAttribute",
    ("SendMessageRequest", "MessageAttributes"): "MessageAttribute",
    ("SendMessageRequest", "MessageSystemAttributes"): "MessageSystemAttribute",
    ("SendMessageBatchRequestEntry", "MessageAttributes"): "MessageAttribute",
    ("SendMessageBatchRequestEntry", "MessageSystemAttributes"): "MessageSystemAttribute",
    ("ListQueueTagsResult", "Tags"): "Tag",
    ("TagQueueRequest", "Tags"): "Tag",
    ("MessageAttributeValue", "StringListValues"): "StringListValue",
    ("MessageAttributeValue", "BinaryListValues"): "BinaryListValue",
    ("MessageSystemAttributeValue", "StringListValues"): "StringListValue",
    ("MessageSystemAttributeValue", "BinaryListValues"): "BinaryListValue",
}
SQS_LIST_MEMBERS = {
    "AttributeNameList": "AttributeName",
    # Its own name, so `MessageSystemAttributeName.N` is read; `AttributeName.N` still reaches
    # the older AttributeNames, which the service merges with it.
    "MessageSystemAttributeList": "MessageSystemAttributeName",
    "MessageAttributeNameList": "MessageAttributeName",
    "QueueUrlList": "QueueUrl",
    "MessageList": "Message",
    "TagKeyList": "TagKey",
    "AWSAccountIdList": "AWSAccountId",
    "ActionNameList": "ActionName",
    "StringList": "StringListValue",
    "BinaryList": "BinaryListValue",
    "ListMessageMoveTasksResultEntryList": "ListMessageMoveTasksResultEntry",
    "BatchResultErrorEntryList": "BatchResultErrorEntry",
}
SQS_MAP_NAMES = {
    "QueueAttributeMap": ("Name", "Value"),
    "MessageSystemAttributeMap": ("Name", "Value"),
    "MessageBodyAttributeMap": ("Name", "Value"),
    "MessageBodySystemAttributeMap": ("Name", "Value"),
    "TagMap": ("Key", "Value"),
}

def sqs_overlay(m):
    sh = m["shapes"]
    for (s, mem), name in SQS_MEMBER_NAMES.items():
        sh[s]["members"][mem]["locationName"] = name
    for s, name in SQS_LIST_MEMBERS.items():
        sh[s]["member"]["locationName"] = name
    for s in sh:
        if s.endswith("BatchRequestEntryList") or s.endswith("BatchResultEntryList"):
            sh[s]["member"]["locationName"] = s[: -len("List")]
    for s, (k, v) in SQS_MAP_NAMES.items():
        sh[s]["key"]["locationName"] = k
        sh[s]["value"]["locationName"] = v
    for name, op in m["operations"].items():
        if "output" in op:
            op["output"]["resultWrapper"] = name + "Result"
    m["metadata"]["xmlNamespace"] = "http://queue.amazonaws.com/doc/2012-11-05/"

for svc, ver in [("sqs", "2012-11-05"), ("sns", "2010-03-31"), ("kinesis", "2013-12-02")]:
    with gzip.open(os.path.join(ROOT, svc, ver, "service-2.json.gz")) as f:
        m = json.load(f)
    m = {"metadata": m["metadata"], "operations": m["operations"], "shapes": m["shapes"]}
    if svc == "sqs":
        sqs_overlay(m)
    m = strip(m)
    with open(os.path.join(OUT, svc + ".json"), "w") as f:
        json.dump(m, f, separators=(",", ":"))
        f.write("\n")
    print(svc, len(m["operations"]), "operations")
