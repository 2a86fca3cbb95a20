from agora.common.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPaymentRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("order_id", "status", "amount_authorized", "amount_captured", "amount_refunded")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_AUTHORIZED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CAPTURED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: str
    amount_authorized: _common_pb2.Money
    amount_captured: _common_pb2.Money
    amount_refunded: _common_pb2.Money
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[str] = ..., amount_authorized: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., amount_captured: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., amount_refunded: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...
