from agora.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SalesReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TopProduct(_message.Message):
    __slots__ = ("product_id", "name", "units")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    name: str
    units: int
    def __init__(self, product_id: _Optional[str] = ..., name: _Optional[str] = ..., units: _Optional[int] = ...) -> None: ...

class SalesReportResponse(_message.Message):
    __slots__ = ("orders_confirmed", "orders_cancelled", "revenue", "refunded", "top_products", "orders_shipped", "users_registered")
    ORDERS_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    ORDERS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    TOP_PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_SHIPPED_FIELD_NUMBER: _ClassVar[int]
    USERS_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    orders_confirmed: int
    orders_cancelled: int
    revenue: _common_pb2.Money
    refunded: _common_pb2.Money
    top_products: _containers.RepeatedCompositeFieldContainer[TopProduct]
    orders_shipped: int
    users_registered: int
    def __init__(self, orders_confirmed: _Optional[int] = ..., orders_cancelled: _Optional[int] = ..., revenue: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., refunded: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., top_products: _Optional[_Iterable[_Union[TopProduct, _Mapping]]] = ..., orders_shipped: _Optional[int] = ..., users_registered: _Optional[int] = ...) -> None: ...

class RebuildRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RebuildResponse(_message.Message):
    __slots__ = ("events_applied",)
    EVENTS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    events_applied: int
    def __init__(self, events_applied: _Optional[int] = ...) -> None: ...
